/* metrics.c - /metrics of `tunic serve` in the Prometheus text format (version 0.0.4):
 * requests by endpoint, errors by status, tokens, queue depth, running requests, slot use,
 * latency histograms (time to first token, per output token, whole request), the batch
 * occupancy (sequences per forward step), routes taken by the "auto" model, adapters loaded.
 * Not for: collecting the numbers (the scheduler and the HTTP threads add to sv->met). */
#define TN_SERVE_INTERNAL
#include <string.h>
#include "serve/serve.h"

const double srv_lat_bounds[SRV_NBUCKETS] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};
const double srv_batch_bounds[SRV_NBUCKETS] = {1, 2, 4, 8, 16, 24, 32, 48, 64, 128, 256, 1024};

void srv_hist_add(srv_hist *h, double v, const double *bounds) {
  h->sum += v;
  h->count++;
  for (int i = 0; i < SRV_NBUCKETS; i++)
    if (v <= bounds[i]) h->b[i]++;
}

static void hist(srv_buf *b, const char *name, const char *help, const srv_hist *h, const double *bounds) {
  srv_buf_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  for (int i = 0; i < SRV_NBUCKETS; i++) srv_buf_printf(b, "%s_bucket{le=\"%g\"} %ld\n", name, bounds[i], h->b[i]);
  srv_buf_printf(b, "%s_bucket{le=\"+Inf\"} %ld\n%s_sum %.6f\n%s_count %ld\n", name, h->count, name, h->sum, name, h->count);
}

char *srv_metrics_text(tn_server *sv) {
  static const char *const ep[] = {"chat_completions", "completions", "models", "health", "metrics", "adapters", "page", "other"};
  static const char *const er[] = {"400", "401", "404", "413", "429", "5xx"};
  srv_buf b = {0};
  pthread_mutex_lock(&sv->mu);
  const srv_metrics *m = &sv->met;
  srv_buf_printf(&b, "# HELP tunic_requests_total HTTP requests by endpoint.\n# TYPE tunic_requests_total counter\n");
  for (int i = 0; i < 8; i++) srv_buf_printf(&b, "tunic_requests_total{endpoint=\"%s\"} %ld\n", ep[i], m->requests[i]);
  srv_buf_printf(&b, "# HELP tunic_request_errors_total Error responses by status.\n# TYPE tunic_request_errors_total counter\n");
  for (int i = 0; i < 6; i++) srv_buf_printf(&b, "tunic_request_errors_total{status=\"%s\"} %ld\n", er[i], m->errors[i]);
  srv_buf_printf(&b, "# HELP tunic_prompt_tokens_total Prompt tokens of finished requests.\n# TYPE tunic_prompt_tokens_total counter\n"
                 "tunic_prompt_tokens_total %ld\n", m->prompt_tokens);
  srv_buf_printf(&b, "# HELP tunic_completion_tokens_total Generated tokens.\n# TYPE tunic_completion_tokens_total counter\n"
                 "tunic_completion_tokens_total %ld\n", m->completion_tokens);
  srv_buf_printf(&b, "# HELP tunic_requests_cancelled_total Requests whose client went away.\n# TYPE tunic_requests_cancelled_total counter\n"
                 "tunic_requests_cancelled_total %ld\n", m->cancelled);
  srv_buf_printf(&b, "# HELP tunic_requests_timeout_total Requests ended by --timeout.\n# TYPE tunic_requests_timeout_total counter\n"
                 "tunic_requests_timeout_total %ld\n", m->timeouts);
  srv_buf_printf(&b, "# HELP tunic_queue_depth Requests waiting for a slot.\n# TYPE tunic_queue_depth gauge\ntunic_queue_depth %d\n", sv->nq);
  srv_buf_printf(&b, "# HELP tunic_requests_running Requests in slots.\n# TYPE tunic_requests_running gauge\ntunic_requests_running %d\n",
                 sv->running);
  srv_buf_printf(&b, "# HELP tunic_slots Slots (sequences decoded together).\n# TYPE tunic_slots gauge\ntunic_slots %d\n", sv->o.slots);
  srv_buf_printf(&b, "# HELP tunic_forward_steps_total Forward calls of the scheduler.\n# TYPE tunic_forward_steps_total counter\n"
                 "tunic_forward_steps_total %ld\n", m->steps);
  srv_buf_printf(&b, "# HELP tunic_prefix_reused_tokens_total Prompt tokens shared with a live sequence instead of computed.\n"
                 "# TYPE tunic_prefix_reused_tokens_total counter\ntunic_prefix_reused_tokens_total %ld\n", m->prefix_reused);
  srv_buf_printf(&b, "# HELP tunic_adapters_loaded Adapters loaded (the base not counted).\n# TYPE tunic_adapters_loaded gauge\n"
                 "tunic_adapters_loaded %d\n", sv->n_ads - 1);
  srv_buf_printf(&b, "# HELP tunic_route_total Requests to the model \"auto\" by the category chosen.\n# TYPE tunic_route_total counter\n");
  for (int i = 0; i < sv->n_routes; i++)
    srv_buf_printf(&b, "tunic_route_total{category=\"%s\",adapter=\"%s\"} %ld\n", sv->routes[i].category, sv->routes[i].adapter,
                   m->route_count[i]);
  if (sv->route_default)
    srv_buf_printf(&b, "tunic_route_total{category=\"default\",adapter=\"%s\"} %ld\n", sv->route_default, m->route_count[sv->n_routes]);
  srv_buf_printf(&b, "# HELP tunic_route_decisions_total Routes of the model \"auto\" by what decided them.\n"
                 "# TYPE tunic_route_decisions_total counter\n");
  static const char *const by[3] = {"keywords", "classifier", "default"};
  for (int i = 0; i < 3; i++) srv_buf_printf(&b, "tunic_route_decisions_total{by=\"%s\"} %ld\n", by[i], m->route_by[i]);
  srv_buf_printf(&b, "# HELP tunic_route_classifier_seconds_total Time spent by the route classifier.\n"
                 "# TYPE tunic_route_classifier_seconds_total counter\ntunic_route_classifier_seconds_total %.6f\n",
                 m->classify_seconds);
  hist(&b, "tunic_time_to_first_token_seconds", "From arrival to the first generated token.", &m->ttft, srv_lat_bounds);
  hist(&b, "tunic_time_per_output_token_seconds", "Between consecutive tokens of a sequence.", &m->per_token, srv_lat_bounds);
  hist(&b, "tunic_request_duration_seconds", "From arrival to the last token.", &m->latency, srv_lat_bounds);
  hist(&b, "tunic_batch_occupancy", "Sequences sampled per forward step.", &m->batch, srv_batch_bounds);
  pthread_mutex_unlock(&sv->mu);
  return b.p;
}
