/* store_ui.h - the web page's files (src/store/ui/), embedded in the binary at build time
 * (CMakeLists.txt writes gen/store_ui_files.c from them), so `tunic serve` serves /ui/ from
 * any install without a data directory. Not for: anything but the file table. */
#ifndef TN_STORE_UI_H
#define TN_STORE_UI_H
#include <stddef.h>
typedef struct {
  const char *name;          /* "index.html", "app.js", ... */
  const unsigned char *data;
  size_t len;
} tn_store_ui_file;
extern const tn_store_ui_file tn_store_ui_files[]; /* ends with a NULL name */
#endif
