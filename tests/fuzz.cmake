# fuzz: every libFuzzer harness of tests/fuzz runs once over its committed corpus (seeds and
# regression inputs), and the allocation-failure test runs under ASan (sampled N), in a
# clang build made by scripts/fuzz.sh (build/fuzz; the first build takes minutes). Only when
# clang is installed (scripts/deps.sh installs it). Long runs: make fuzz / make allocfail.
find_program(TN_CLANG NAMES clang clang-14)
if(TN_CLANG)
  set(TN_FUZZ_DIR ${CMAKE_BINARY_DIR}/fuzz)
  add_test(NAME fuzz_build COMMAND ${CMAKE_COMMAND} -E env FUZZ_BUILD=${TN_FUZZ_DIR}
           ${CMAKE_SOURCE_DIR}/scripts/fuzz.sh 0)
  set_tests_properties(fuzz_build PROPERTIES FIXTURES_SETUP fuzz_bins TIMEOUT 3600)
  file(GLOB TN_FUZZ_HARNESSES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
  foreach(f ${TN_FUZZ_HARNESSES})
    get_filename_component(n ${f} NAME_WE)
    string(REPLACE "fuzz_" "" c ${n})
    set(seeds ${CMAKE_SOURCE_DIR}/tests/fuzz/corpus/${c})
    if(NOT IS_DIRECTORY ${seeds})
      set(seeds ${CMAKE_SOURCE_DIR}/tests/fuzz/${c})  # a harness may keep its seeds beside it
    endif()
    # through `cmake -E env`: the binary exists only once the fuzz_build fixture has run
    add_test(NAME fuzz_corpus_${c} COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
             ${TN_FUZZ_DIR}/tests/fuzz/${n} -runs=0 -timeout=60 ${seeds})
    set_tests_properties(fuzz_corpus_${c} PROPERTIES FIXTURES_REQUIRED fuzz_bins TIMEOUT 600
                         ENVIRONMENT "${TN_TEST_ENV}")
  endforeach()
  add_test(NAME allocfail_asan COMMAND ${CMAKE_COMMAND} -E env ${TN_FUZZ_DIR}/tests/fuzz/allocfail --every 97)
  set_tests_properties(allocfail_asan PROPERTIES FIXTURES_REQUIRED fuzz_bins TIMEOUT 1200
                       ENVIRONMENT "${TN_TEST_ENV};OMP_NUM_THREADS=1")
endif()
