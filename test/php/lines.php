<?php
// test_565: `n` lines `ms` apart, each flushed, each with its time stamp.
$n = (int)($_GET['n'] ?? 4);
$ms = (int)($_GET['ms'] ?? 300);
header('Content-Type: application/x-h2x-lines');
while (ob_get_level()) {
    ob_end_flush();
}
for ($i = 0; $i < $n; $i++) {
    if ($i) {
        usleep($ms * 1000);
    }
    printf("line %d %.6f\n", $i, microtime(true));
    flush();
}
