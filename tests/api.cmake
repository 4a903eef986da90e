# api.cmake - the public API from outside the tree: install into a temporary prefix, build
# examples/*.c against it with pkg-config alone, check the exported symbols, run them.
add_test(NAME api_install_examples
         COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/api/install_examples.sh ${CMAKE_SOURCE_DIR} ${CMAKE_BINARY_DIR}
                 $<TARGET_FILE:tunic>)
set_tests_properties(api_install_examples PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 300)
