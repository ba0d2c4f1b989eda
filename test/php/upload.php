<?php
// test_565: a multipart upload as PHP parsed it.
header('Content-Type: text/plain');
ksort($_FILES);
foreach ($_FILES as $field => $f) {
    echo $field, ' ', $f['name'], ' ', $f['error'], ' ', $f['size'], ' ',
         $f['error'] === 0 ? md5_file($f['tmp_name']) : '-', "\n";
}
ksort($_POST);
foreach ($_POST as $k => $v) {
    echo 'field ', $k, ' ', md5($v), "\n";
}
