/* store_sqlite.c - the SQLite implementation of the store's interface (store.h, tn_store_ops):
 * a WAL database, synchronous=FULL (a commit survives kill -9 and power loss), a busy timeout
 * so writers from several processes wait for each other, one transaction per operation, SQL
 * only through prepared statements with bound parameters. One connection per open store,
 * shared by the server's threads under a mutex (a transaction is never interleaved).
 * Not for: validation, selection strategies or exports (store.c) - this file stores rows. */
#include "store/store.h"
#include <pthread.h>
#include <sqlite3.h>
#include <string.h>

struct tn_store_db {
  sqlite3 *db;
  pthread_mutex_t mu;
  char *path;
};

static tn_status dberr(tn_store_db *d, const char *what) {
  return tn_error(TN_ERR_IO, "store %s: %s: %s", d->path, what, sqlite3_errmsg(d->db));
}

static tn_status exec(tn_store_db *d, const char *sql) {
  char *msg = NULL;
  if (sqlite3_exec(d->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
    tn_status s = tn_error(TN_ERR_IO, "store %s: %s: %s", d->path, sql, msg ? msg : sqlite3_errmsg(d->db));
    sqlite3_free(msg);
    return s;
  }
  return TN_OK;
}

static tn_status prep(tn_store_db *d, const char *sql, sqlite3_stmt **st) {
  if (sqlite3_prepare_v2(d->db, sql, -1, st, NULL) != SQLITE_OK) return dberr(d, "prepare");
  return TN_OK;
}

/* BEGIN IMMEDIATE for writers (the write lock up front: no upgrade deadlock), DEFERRED for readers */
static tn_status begin(tn_store_db *d, bool write) {
  pthread_mutex_lock(&d->mu);
  tn_status s = exec(d, write ? "BEGIN IMMEDIATE" : "BEGIN");
  if (s != TN_OK) pthread_mutex_unlock(&d->mu);
  return s;
}

static tn_status end(tn_store_db *d, tn_status s) {
  if (s == TN_OK) s = exec(d, "COMMIT");
  if (s != TN_OK) sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
  pthread_mutex_unlock(&d->mu);
  return s;
}

static const char *schema =
    "CREATE TABLE IF NOT EXISTS traces ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, game TEXT, created_at TEXT NOT NULL,"
    " score REAL, json TEXT NOT NULL);"
    "CREATE INDEX IF NOT EXISTS traces_source ON traces(source, game, id);"
    "CREATE INDEX IF NOT EXISTS traces_score ON traces(score);"
    "CREATE TABLE IF NOT EXISTS objects ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL, key TEXT NOT NULL, json TEXT NOT NULL,"
    " UNIQUE(kind, key));";

static void sq_close(tn_store_db *d) {
  if (!d) return;
  sqlite3_close_v2(d->db);
  pthread_mutex_destroy(&d->mu);
  free(d->path);
  free(d);
}

static tn_status sq_open(tn_store_db **out, const char *path) {
  *out = NULL;
  tn_store_db *d = calloc(1, sizeof *d);
  if (!d || !(d->path = strdup(path))) { free(d); return tn_error(TN_ERR_NOMEM, "store: out of memory"); }
  pthread_mutex_init(&d->mu, NULL);
  if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
    tn_status s = tn_error(TN_ERR_IO, "store %s: cannot open: %s", path, d->db ? sqlite3_errmsg(d->db) : "out of memory");
    sq_close(d);
    return s;
  }
  sqlite3_busy_timeout(d->db, 30000);
  tn_status s = exec(d, "PRAGMA journal_mode=WAL");
  if (s == TN_OK) s = exec(d, "PRAGMA synchronous=FULL");
  if (s == TN_OK) s = exec(d, "PRAGMA foreign_keys=ON");
  if (s == TN_OK) {
    sqlite3_stmt *st = NULL; /* refuse a file that is not a database before touching it */
    s = prep(d, "SELECT count(*) FROM sqlite_master", &st);
    if (s == TN_OK && sqlite3_step(st) != SQLITE_ROW) s = dberr(d, "not a database");
    sqlite3_finalize(st);
  }
  if (s == TN_OK && (s = begin(d, true)) == TN_OK) s = end(d, exec(d, schema));
  if (s != TN_OK) { sq_close(d); return s; }
  *out = d;
  return TN_OK;
}

static tn_status bind_text(tn_store_db *d, sqlite3_stmt *st, int i, const char *v) {
  int rc = v ? sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
  return rc == SQLITE_OK ? TN_OK : dberr(d, "bind");
}

static tn_status sq_traces_insert(tn_store_db *d, const tn_store_trace_row *rows, int n, int64_t *ids) {
  TN_TRY(begin(d, true));
  sqlite3_stmt *st = NULL;
  tn_status s = prep(d, "INSERT INTO traces(source, game, created_at, score, json) VALUES (?, ?, ?, ?, ?)", &st);
  for (int i = 0; s == TN_OK && i < n; i++) {
    sqlite3_reset(st);
    s = bind_text(d, st, 1, rows[i].source);
    if (s == TN_OK) s = bind_text(d, st, 2, rows[i].game);
    if (s == TN_OK) s = bind_text(d, st, 3, rows[i].created_at);
    if (s == TN_OK && (rows[i].has_score ? sqlite3_bind_double(st, 4, rows[i].score) : sqlite3_bind_null(st, 4)) != SQLITE_OK)
      s = dberr(d, "bind");
    if (s == TN_OK) s = bind_text(d, st, 5, rows[i].json);
    if (s == TN_OK && sqlite3_step(st) != SQLITE_DONE) s = dberr(d, "insert trace");
    if (s == TN_OK) ids[i] = sqlite3_last_insert_rowid(d->db);
  }
  sqlite3_finalize(st);
  return end(d, s);
}

static tn_status sq_trace_get(tn_store_db *d, int64_t id, char **json, bool *found) {
  *json = NULL;
  *found = false;
  TN_TRY(begin(d, false));
  sqlite3_stmt *st = NULL;
  tn_status s = prep(d, "SELECT json FROM traces WHERE id = ?", &st);
  if (s == TN_OK && sqlite3_bind_int64(st, 1, id) != SQLITE_OK) s = dberr(d, "bind");
  if (s == TN_OK) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      *found = true;
      if (!(*json = strdup((const char *)sqlite3_column_text(st, 0)))) s = tn_error(TN_ERR_NOMEM, "store: out of memory");
    } else if (rc != SQLITE_DONE) {
      s = dberr(d, "read trace");
    }
  }
  sqlite3_finalize(st);
  return end(d, s);
}

static tn_status sq_traces_query(tn_store_db *d, const tn_store_trace_query *q, tn_store_row_fn fn, void *ctx) {
  /* one fixed statement: each filter is "? IS NULL OR column op ?" (no SQL is assembled from input) */
  static const char *sql[3] = {
#define WHERE " WHERE (?1 IS NULL OR source = ?1) AND (?2 IS NULL OR game = ?2) AND (?3 IS NULL OR created_at >= ?3)" \
              " AND (?4 IS NULL OR created_at <= ?4) AND (?5 IS NULL OR score >= ?5) AND (?6 IS NULL OR id < ?6)"
      "SELECT id, json FROM traces" WHERE " ORDER BY id DESC LIMIT ?7",
      "SELECT id, json FROM traces" WHERE " AND score IS NOT NULL ORDER BY score DESC, id ASC LIMIT ?7",
      "SELECT id, json FROM traces" WHERE " ORDER BY id ASC LIMIT ?7",
#undef WHERE
  };
  if (q->order < 0 || q->order > 2) return tn_error(TN_ERR_ARG, "store: bad query order %d", q->order);
  TN_TRY(begin(d, false));
  sqlite3_stmt *st = NULL;
  tn_status s = prep(d, sql[q->order], &st);
  if (s == TN_OK) s = bind_text(d, st, 1, q->source);
  if (s == TN_OK) s = bind_text(d, st, 2, q->game);
  if (s == TN_OK) s = bind_text(d, st, 3, q->since);
  if (s == TN_OK) s = bind_text(d, st, 4, q->until);
  if (s == TN_OK && (q->has_min_score ? sqlite3_bind_double(st, 5, q->min_score) : sqlite3_bind_null(st, 5)) != SQLITE_OK)
    s = dberr(d, "bind");
  if (s == TN_OK && (q->before_id > 0 ? sqlite3_bind_int64(st, 6, q->before_id) : sqlite3_bind_null(st, 6)) != SQLITE_OK)
    s = dberr(d, "bind");
  if (s == TN_OK && sqlite3_bind_int64(st, 7, q->limit > 0 ? q->limit : -1) != SQLITE_OK) s = dberr(d, "bind");
  while (s == TN_OK) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) { s = dberr(d, "query traces"); break; }
    s = fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
  }
  sqlite3_finalize(st);
  return end(d, s);
}

static tn_status get_object(tn_store_db *d, const char *kind, const char *key, char **json, bool *found) {
  *json = NULL;
  *found = false;
  sqlite3_stmt *st = NULL;
  tn_status s = prep(d, "SELECT json FROM objects WHERE kind = ? AND key = ?", &st);
  if (s == TN_OK) s = bind_text(d, st, 1, kind);
  if (s == TN_OK) s = bind_text(d, st, 2, key);
  if (s == TN_OK) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
      *found = true;
      if (!(*json = strdup((const char *)sqlite3_column_text(st, 0)))) s = tn_error(TN_ERR_NOMEM, "store: out of memory");
    } else if (rc != SQLITE_DONE) {
      s = dberr(d, "read");
    }
  }
  sqlite3_finalize(st);
  return s;
}

static tn_status put_object(tn_store_db *d, const char *sql, const char *kind, const char *key, const char *json) {
  sqlite3_stmt *st = NULL;
  tn_status s = prep(d, sql, &st);
  if (s == TN_OK) s = bind_text(d, st, 1, kind);
  if (s == TN_OK) s = bind_text(d, st, 2, key);
  if (s == TN_OK) s = bind_text(d, st, 3, json);
  if (s == TN_OK && sqlite3_step(st) != SQLITE_DONE) s = dberr(d, "write");
  sqlite3_finalize(st);
  return s;
}

static tn_status sq_object_insert(tn_store_db *d, const char *kind, const char *key, const char *json, bool *inserted,
                                  char **existing) {
  *inserted = false;
  *existing = NULL;
  TN_TRY(begin(d, true));
  bool found;
  tn_status s = get_object(d, kind, key, existing, &found);
  if (s == TN_OK && !found) {
    s = put_object(d, "INSERT INTO objects(kind, key, json) VALUES (?, ?, ?)", kind, key, json);
    *inserted = s == TN_OK;
  }
  return end(d, s);
}

static tn_status sq_object_put(tn_store_db *d, const char *kind, const char *key, const char *json) {
  TN_TRY(begin(d, true));
  return end(d, put_object(d, "INSERT INTO objects(kind, key, json) VALUES (?, ?, ?) "
                              "ON CONFLICT(kind, key) DO UPDATE SET json = excluded.json", kind, key, json));
}

static tn_status sq_object_get(tn_store_db *d, const char *kind, const char *key, char **json, bool *found) {
  TN_TRY(begin(d, false));
  return end(d, get_object(d, kind, key, json, found));
}

static tn_status sq_object_list(tn_store_db *d, const char *kind, tn_store_row_fn fn, void *ctx) {
  TN_TRY(begin(d, false));
  sqlite3_stmt *st = NULL;
  tn_status s = prep(d, "SELECT seq, json FROM objects WHERE kind = ? ORDER BY seq DESC", &st);
  if (s == TN_OK) s = bind_text(d, st, 1, kind);
  while (s == TN_OK) {
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE) break;
    if (rc != SQLITE_ROW) { s = dberr(d, "list"); break; }
    s = fn(ctx, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
  }
  sqlite3_finalize(st);
  return end(d, s);
}

const tn_store_ops tn_store_sqlite_ops = {
    .name = "sqlite",
    .open = sq_open,
    .close = sq_close,
    .traces_insert = sq_traces_insert,
    .trace_get = sq_trace_get,
    .traces_query = sq_traces_query,
    .object_insert = sq_object_insert,
    .object_put = sq_object_put,
    .object_get = sq_object_get,
    .object_list = sq_object_list,
};
