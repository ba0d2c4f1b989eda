<?php
// test_565: the answer is complete at fastcgi_finish_request(); the script goes on.
header('Content-Type: text/plain');
echo "finished\n";
fastcgi_finish_request();
sleep((int)($_GET['s'] ?? 2));
