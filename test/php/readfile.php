<?php
// test_565: a file of the document root through readfile().
$name = basename($_GET['name'] ?? 'f565.bin');
$path = __DIR__ . '/' . $name;
header('Content-Type: application/octet-stream');
header('Content-Length: ' . filesize($path));
readfile($path);
