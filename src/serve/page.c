/* page.c - the chat page of `tunic serve` (src/serve/page.html, turned into the bytes of
 * serve_page.h by CMake at configure time), served at / and /index.html.
 * Not for: the page's code (page.html). */
#define TN_SERVE_INTERNAL
#include "serve/serve.h"

const char srv_page_html[] = {
#include "serve_page.h"
};
