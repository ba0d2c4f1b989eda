<?php
// test_565: sleep, then a short answer.
usleep((int)(1000000 * (float)($_GET['s'] ?? 1)));
echo "slept\n";
