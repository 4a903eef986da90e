#!/bin/sh
# run_grad_tests.sh FAMILY - gradient checks of the decoder backward (issue 4) for one
# family over several shapes, each against PyTorch autograd (compare_grads.py).
set -e
fam=$1
T=${TUNIC:?TUNIC must name the tunic binary}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
here=$(dirname "$0")
IDS="1,5,7,9,11,13,2,3,4,5,6,7,8,9,10,11;3,4,5;20,21,22,23,24"
run() { # name arch override
  "$T" init --arch "$2" --out "$dir/$1" --seed 11 --override "$3" >/dev/null
  echo "== $1 $3"
  /usr/bin/python3 "$here/compare_grads.py" --model "$dir/$1" --ids "$IDS"
}
case "$fam" in
llama)
  run l_tied llama '{"vocab_size":128}'
  run l_untied_mqa llama '{"vocab_size":128,"tie_word_embeddings":false,"num_key_value_heads":1,"head_dim":24,"attention_bias":true,"mlp_bias":true}'
  run l_rope llama '{"vocab_size":128,"rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":16}}' ;;
qwen2)
  run q2 qwen2 '{"vocab_size":128}'
  run q2_untied qwen2 '{"vocab_size":128,"tie_word_embeddings":false,"num_key_value_heads":4}' ;;
qwen3)
  run q3 qwen3 '{"vocab_size":128}'
  run q3_mqa qwen3 '{"vocab_size":128,"num_key_value_heads":1,"head_dim":32}' ;;
gemma3)
  run g3 gemma3_text '{"vocab_size":128}'
  run g3_caps gemma3_text '{"vocab_size":128,"final_logit_softcapping":3.0,"attn_logit_softcapping":2.0,"sliding_window":4,"query_pre_attn_scalar":24}' ;;
*) echo "unknown family $fam" >&2; exit 2 ;;
esac
