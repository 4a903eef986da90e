# allocfail: the N-th allocation fails during model load, tokenizer load and one step of
# SFT, DPO and GRPO (tests/allocfail.c); here a sample of N (every 61st plus the first and
# last 50 of each phase) in this build (with leak checks in `make test SAN=1`); the ASan
# build of tests/fuzz.cmake runs another sample; `make allocfail` tries every N.
add_executable(allocfail ${CMAKE_CURRENT_SOURCE_DIR}/allocfail.c)
target_link_libraries(allocfail PRIVATE tunic_static)
add_test(NAME allocfail COMMAND allocfail --every 61)
set_tests_properties(allocfail PROPERTIES ENVIRONMENT "${TN_TEST_ENV};OMP_NUM_THREADS=1" TIMEOUT 1200)
