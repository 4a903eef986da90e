/* tunic.h - the public API of libtunic: post-training for small open language models.
 * Opaque handles, tn_status return codes, no globals. Each area has its own header. */
#ifndef TUNIC_H
#define TUNIC_H
#include "tunic/base.h"
#include "tunic/model.h"
#include "tunic/tokenizer.h"
#include "tunic/obs.h"
#include "tunic/rl.h"
#include "tunic/adapter.h"
#include "tunic/generate.h"
#include "tunic/train.h"
#include "tunic/eval.h"
#endif
