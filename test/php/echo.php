<?php
// test_565: md5 and length of the raw request body.
header('Content-Type: text/plain');
$d = file_get_contents('php://input');
echo md5($d), ' ', strlen($d), "\n";
