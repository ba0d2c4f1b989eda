<?php
// test_565: an answer without a body.
$s = (int)($_GET['s'] ?? 204);
http_response_code($s);
if ($s === 200) {
    header('Content-Length: 0');
}
