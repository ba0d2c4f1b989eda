<?php
// test_566: the process and the interval this request ran in.
$start = microtime(true);
usleep((int)(1000 * (float)($_GET['ms'] ?? 200)));
printf("%d %.6f %.6f\n", getmypid(), $start, microtime(true));
