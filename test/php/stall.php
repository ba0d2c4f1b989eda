<?php
// test_565: 1000 bytes, flushed, then a long sleep (a stalled application).
header('Content-Type: application/octet-stream');
if (($_GET['cl'] ?? '0') === '1') {
    header('Content-Length: 1005');
}
while (ob_get_level()) {
    ob_end_flush();
}
echo str_repeat('x', 1000);
flush();
sleep((int)($_GET['s'] ?? 30));
echo "late\n";
