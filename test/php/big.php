<?php
// test_565: `size` bytes of a pattern (sha256 of a seed, repeated), in 64 KiB echoes.
$size = (int)($_GET['size'] ?? 1000000);
header('Content-Type: application/octet-stream');
if (($_GET['cl'] ?? '0') === '1') {
    header('Content-Length: ' . $size);
}
$block = str_repeat(hash('sha256', "h2x-565-$size", true), 2048);
for ($left = $size; $left > 0; $left -= strlen($block)) {
    echo $left >= strlen($block) ? $block : substr($block, 0, $left);
}
