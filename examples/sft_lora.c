/* sft_lora.c - LoRA fine-tuning with libtunic's public API: SFT of a Hugging Face model
 * directory on a prompt/completion JSONL file, rank-8 adapters on q/k/v/o, saved as a PEFT
 * adapter (OUT/adapter/adapter_config.json + adapter_model.safetensors) that PEFT, vLLM,
 * llama.cpp's converter and `tunic generate --adapter` read.
 *
 *   cc sft_lora.c $(pkg-config --cflags --libs tunic) -o sft_lora
 *   ./sft_lora MODEL_DIR train.jsonl runs/lora [steps]
 */
#include <stdio.h>
#include <stdlib.h>
#include <tunic.h>

int main(int argc, char **argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL_DIR DATA.jsonl OUT_DIR [steps]\n", argv[0]);
    return 2;
  }
  tn_sft_opts o;
  tn_sft_opts_default(&o);
  o.model = argv[1];
  o.data = argv[2];
  o.out = argv[3];
  o.lora_rank = 8;
  o.steps = argc > 4 ? atoi(argv[4]) : 6;
  o.batch_size = 4;
  o.lr = 1e-3f;
  o.eval_split = 0.0f; /* train on everything */
  o.seed = 1;
  const tn_status s = tn_sft_run(&o, NULL);
  if (s != TN_OK) {
    fprintf(stderr, "sft failed: %s: %s\n", tn_status_name(s), tn_last_error());
    return 1;
  }
  printf("adapter written to %s/adapter\n", o.out);
  return 0;
}
