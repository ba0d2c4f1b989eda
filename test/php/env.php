<?php
// test_565: what PHP sees of the request.
header('Content-Type: application/json');
$keys = ['SERVER_PROTOCOL', 'HTTP2', 'H2PUSH', 'H2_STREAM_ID', 'HTTPS', 'REQUEST_METHOD',
         'HTTP_HOST', 'CONTENT_LENGTH', 'REQUEST_SCHEME'];
$out = [];
foreach ($keys as $k) {
    $out[$k] = isset($_SERVER[$k]) ? (string)$_SERVER[$k] : null;
}
echo json_encode($out);
