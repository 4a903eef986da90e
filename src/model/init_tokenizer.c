/* init_tokenizer.c - the byte-level tokenizer `tunic init --tokenizer bytes` writes beside a
 * tiny model: the tokenizer tunic's BPE writer makes with no merges (src/tokenizer/tok_write.c;
 * ids 0..255 bytes, 256..260 <pad> <bos> <eos> <start_of_turn> <end_of_turn>). Trained
 * tokenizers (`tunic train-tokenizer`) come from the same writer. */
#include "model/model.h"
#include "tunic/tokenizer.h"

tn_status tn_write_byte_tokenizer(const char *dir) { return tn_bpe_write(dir, NULL); }
