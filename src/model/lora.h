/* lora.h - LoRA adapters on the decoder's projections, in Hugging Face PEFT's
 * format: creating them (PEFT's init), attaching one set to a model, training
 * (flat parameter and gradient buffers + an optimizer table), dropout, saving
 * and loading adapter_config.json + adapter_model.safetensors, and merging
 * W' = W + scale * B A into the model's f32 weights.
 *
 * An adapter SET is every (A, B) pair of one adapter (PEFT's "adapter name").
 * A set belongs to one model; several sets may be loaded for the same model and
 * exactly one (or none) is active at a time: tn_lora_activate(set) points the
 * model's matrices at that set's adapters (replacing whatever was attached),
 * tn_lora_deactivate(set) removes them. The matrices only hold pointers into the
 * set (tn_mat.lora), so switching is O(number of modules) and copies nothing.
 * A set must be deactivated (or freed) before its model is freed.
 *
 * Modules tunic adapts: model.layers.N.self_attn.{q,k,v,o}_proj and
 * model.layers.N.mlp.{gate,up,down}_proj (PEFT's module names, i.e. the keys that
 * target_modules is matched against). Targets, as PEFT matches them:
 *   - a list of names: a module matches when its name equals the entry or ends
 *     with "." + entry ("q_proj", "self_attn.q_proj");
 *   - a single string: a regular expression that must match the WHOLE module name
 *     (Python's re.fullmatch; tunic uses PCRE2), e.g. ".*\.(q|v)_proj";
 *   - "all-linear": every projection above (PEFT: all linear layers but lm_head).
 * On the command line (opts.targets) a string containing any of \^$*+?()[]{}| is a
 * regex; otherwise it is a comma-separated list of names.
 *
 * It is model code (generation, eval, merge and export use it without the trainers); the
 * gradient buffers and the optimizer rows of a set being trained are train/lora.h's.
 * Not for: the optimizer (train/optim.h), the decoder backward (train/train.h). */
#ifndef TN_MODEL_LORA_H
#define TN_MODEL_LORA_H
#include <stdbool.h>
#include <stdint.h>
#include "model/model.h"
#include "model/safetensors.h"

struct tn_param; /* the optimizer's row (train/optim.h); filled by tn_lora_alloc_grads */

/* The seven adaptable projections, in PEFT's module order within a layer. */
enum { TN_LORA_Q = 0, TN_LORA_K, TN_LORA_V, TN_LORA_O, TN_LORA_GATE, TN_LORA_UP, TN_LORA_DOWN, TN_LORA_NKINDS };
const char *tn_lora_kind_name(int kind); /* "q_proj", ... */

typedef struct {
  int rank;             /* r (default 8, PEFT's default) */
  float alpha;          /* lora_alpha (default 16) */
  float dropout;        /* lora_dropout, 0 <= p < 1 (default 0) */
  bool rslora;          /* scale alpha / sqrt(r) instead of alpha / r */
  const char *targets;  /* NULL or "": "q_proj,k_proj,v_proj,o_proj"; see above */
  uint64_t seed;        /* A's init and the dropout masks */
  const char *name;     /* adapter name (default "default") */
} tn_lora_opts;
void tn_lora_opts_default(tn_lora_opts *o);

typedef struct {
  char name[96];                    /* "model.layers.3.self_attn.q_proj" */
  char name_a[128], name_b[128];    /* PEFT tensor names "base_model.model.<name>.lora_A.weight" */
  int layer, kind;
  float alpha;                      /* this module's lora_alpha (rank/alpha patterns) */
  tn_mat *mat;                      /* the model's matrix */
  tn_lora lora;                     /* r, scale, A (r, in), B (out, r), dA, dB, dropout */
} tn_lora_module;

typedef struct tn_lora_set {
  char name[64];                    /* adapter name */
  tn_model *model;
  tn_lora_module *mods;             /* (n) layer-major, kinds in enum order */
  int n;
  float *flat;                      /* (n_floats) every A then B, module by module (64-byte aligned) */
  size_t n_floats;
  float *gflat;                     /* (n_floats) dA/dB in the same layout; NULL until tn_lora_alloc_grads */
  struct tn_param *params;          /* (n_params = 2n) optimizer rows (PEFT names, decay=true), train/lora.h */
  int n_params;
  int rank;                         /* config r (modules may differ through rank_pattern) */
  float alpha, dropout;
  bool rslora, merged;
  char *targets_json;               /* target_modules as JSON (list or string) */
  char *layers_json, *exclude_json; /* layers_to_transform / exclude_modules as JSON, or NULL */
  char *base_model;                 /* base_model_name_or_path */
  int *at;                          /* (L * TN_LORA_NKINDS) index into mods of (layer, kind), -1: none */
} tn_lora_set;

/* A new set for m with PEFT's init: A ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform
 * with a = sqrt(5)), B = 0; no gradients (train/lora.h: tn_lora_alloc_grads). Not
 * attached (tn_lora_activate).
 * Errors (TN_ERR_ARG) name the option: rank <= 0, dropout outside [0, 1), a bad
 * regex, a target matching no module. */
tn_status tn_lora_create(tn_model *m, const tn_lora_opts *o, tn_lora_set **out);
/* tn_lora_create + tn_lora_activate. */
tn_status tn_lora_attach(tn_model *m, const tn_lora_opts *o, tn_lora_set **out);

/* Load DIR/adapter_config.json + DIR/adapter_model.safetensors (made by PEFT or
 * tunic) for m, named `name` (NULL: "default"). Not attached, no gradients.
 * Honours r, lora_alpha, use_rslora, lora_dropout (for further training),
 * target_modules (list or regex), exclude_modules, layers_to_transform,
 * rank_pattern / alpha_pattern; F32/BF16/F16 tensors. Refuses (TN_ERR_UNSUPPORTED,
 * naming the file and field) what it cannot honour: use_dora, bias != "none",
 * lora_bias, modules_to_save, fan_in_fan_out, layer_replication,
 * target_parameters, trainable_token_indices, a peft_type other than LORA, and any
 * tensor that is not the lora_A/lora_B weight of a projection listed above.
 * Shapes are checked against the model (TN_ERR_FORMAT naming file and tensor);
 * a module matched by the config without its tensors is an error, as is a tensor
 * of a module the config does not target. */
tn_status tn_lora_load(tn_model *m, const char *dir, const char *name, tn_lora_set **out);

/* Make s the model's active adapter (replacing any attached adapter). */
void tn_lora_activate(tn_lora_set *s);
/* Remove s's adapters from the model's matrices (those still pointing at s). */
void tn_lora_deactivate(tn_lora_set *s);
bool tn_lora_is_active(const tn_lora_set *s);
/* Adapters on/off while staying attached (off = the base model: the reference
 * policy of DPO/GRPO). */
void tn_lora_enable(tn_lora_set *s, bool on);
/* Dropout on (train) or off. counter selects the masks: use a value unique to
 * each forward (e.g. step * micro_batches + micro); keep it between a forward and
 * its backward. With dropout 0 this only records the flag. */
void tn_lora_train_mode(tn_lora_set *s, bool train, uint64_t counter);

/* The per-module dropout seeds as tn_lora_create(seed) sets them (module i gets a
 * hash of (seed, i)). tn_lora_load uses seed 0: a run resumed from a saved adapter
 * calls this with the run's seed so its masks equal the uninterrupted run's. */
void tn_lora_dropout_seed(tn_lora_set *s, uint64_t seed);


/* DIR/adapter_model.safetensors (F32, PEFT names) and DIR/adapter_config.json
 * (PEFT's fields), each written atomically; DIR is created. */
tn_status tn_lora_save(const tn_lora_set *s, const char *dir);

/* W += scale * B A for every module (f32 weights only), then deactivate s and mark
 * it merged (merging twice is an error). */
tn_status tn_lora_merge(tn_lora_set *s);

/* safetensors entries (PEFT names, F32) of every A and B, the data taken from base (s->flat: the
 * adapter; s->gflat: its gradients); *out (2n entries) is freed by the caller. */
tn_status tn_lora_entries(const tn_lora_set *s, const float *base, tn_st_entry **out);

/* ---- several adapters in one forward call ----
 * A state's slots may each name an adapter set (NULL: none): tn_forward then computes the base
 * projections once for all its rows and adds to each row its own slot's adapter delta
 * (scale * B A x, the rows grouped by adapter), so requests for different adapters batch
 * together. Each row gets the numbers of running it alone with its adapter activated, up to float
 * rounding (the fused decode/prefill regions are not used for such a call: tn_forward takes the
 * per-kernel path, as it does with an activated adapter). Applied on top of whatever adapter is
 * activated on the model's matrices (normally none). Inference states only; the sets must outlive
 * their use in the state. */
tn_status tn_state_set_adapter(tn_state *st, int slot, tn_lora_set *set);
tn_lora_set *tn_state_adapter(const tn_state *st, int slot);
/* (decoder.c) Before a forward of N rows: group the rows by their slots' adapters; false when no
 * row has one. tn_lora_rows_apply then adds the groups' deltas of projection (layer, kind) to y. */
bool tn_lora_rows_plan(tn_state *st, int N, const int *seq);
void tn_lora_rows_apply(tn_state *st, int layer, int kind, float *y, const float *x, const tn_mat *W, int N);
void tn_state_adapters_free(tn_state *st);

/* Deactivate and free (NULL is fine). */
void tn_lora_free(tn_lora_set *s);

/* Stacking (PEFT's add_weighted_adapter with combination_type "cat" and weights 1): a new set
 * named `name` whose delta on every module is a's plus b's, A = [A_a; A_b] (r_a + r_b rows),
 * B = [scale_a B_a | scale_b B_b], lora_alpha = r (scale 1, no rsLoRA). Equal to applying a
 * and b together up to the summation order of the f32 products. a and b must adapt the same
 * modules of the same model (TN_ERR_ARG naming the first that differs). Not attached. */
tn_status tn_lora_concat(const tn_lora_set *a, const tn_lora_set *b, const char *name, tn_lora_set **out);
/* Load DIR_A and DIR_B for m, concatenate them and save the stack as a PEFT adapter in OUT_DIR. */
tn_status tn_lora_stack_dirs(tn_model *m, const char *dir_a, const char *dir_b, const char *out_dir);

/* The command line's adapters: SPEC is "DIR" (one adapter, named "default") or
 * "NAME=DIR,NAME=DIR,..." (several adapters by name, loaded side by side); the one
 * named USE (NULL: the first) is activated. *sets (n of them) are freed with
 * tn_lora_sets_free. An unknown USE is an error listing the names. */
tn_status tn_lora_load_spec(tn_model *m, const char *spec, const char *use, tn_lora_set ***sets, int *n);
void tn_lora_sets_free(tn_lora_set **sets, int n);
#endif
