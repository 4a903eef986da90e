# store.cmake - issue 19, the trace and dataset store: the seeds' sequence end to end on the CLI
# (store_seeds_e2e), and the web page in headless Chromium served by `tunic serve --store`
# (store_ui; skipped (77) without puppeteer-core). test_store.c (cmocka) holds the rest.
add_test(NAME store_seeds_e2e COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/store/seeds_e2e.py)
set_tests_properties(store_seeds_e2e PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
add_test(NAME store_ui COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/store/seeds_e2e.py --ui)
set_tests_properties(store_ui PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e" SKIP_RETURN_CODE 77)
# the store in `tunic serve --store --log-traces` over real HTTP
add_test(NAME store_serve COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/store/serve_store.py)
set_tests_properties(store_serve PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600 LABELS "e2e")
