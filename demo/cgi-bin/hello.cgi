#!/bin/sh
# hello.cgi: the mod_h2x demo's CGI.
#
#   /cgi-bin/hello.cgi          says how this request reached the server
#   /cgi-bin/hello.cgi?empty    200 with an empty body
#   /cgi-bin/hello.cgi?stall    half a body, then silence: the server gives
#                               up after CGIDScriptTimeout (5 s in the demo)

case "$QUERY_STRING" in
empty)
    printf 'Content-Type: text/plain\r\n\r\n'
    exit 0
    ;;
stall)
    printf 'Content-Type: text/plain\r\n\r\n'
    printf 'This is the first half of the body. The script now stops writing.\n'
    sleep 20
    printf 'Nobody reads this: the server gave up on the script long ago.\n'
    exit 0
    ;;
esac

printf 'Content-Type: text/plain; charset=utf-8\r\n\r\n'
printf 'Hello from a CGI behind mod_h2x.\n\n'
printf 'protocol      %s\n' "${SERVER_PROTOCOL:-?}"
printf 'HTTP2         %s\n' "${HTTP2:-off}"
printf 'H2_STREAM_ID  %s\n' "${H2_STREAM_ID:--}"
printf 'HTTPS         %s\n' "${HTTPS:-off}"
printf 'SSL_PROTOCOL  %s\n' "${SSL_PROTOCOL:--}"
printf 'server port   %s\n' "${SERVER_PORT:-?}"
