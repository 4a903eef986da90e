# train_tokenizer.cmake - `tunic train-tokenizer` against tests/ref/bpe_train_ref.py (merges
# identical on math SFT data, a multilingual corpus with ties, min-frequency stops), the written
# tokenizer.json (consistency, round trips through tokenize/detokenize, Hugging Face ids via
# transformers.js when the npm packages are there), bad inputs, and `init --tokenizer DIR`.
add_test(NAME train_tokenizer COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/train_tokenizer/check.py)
set_tests_properties(train_tokenizer PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300 LABELS "tokenizer")
