# losses.cmake - the loss heads against PyTorch: test_losses (cmocka) writes its
# hand-built cases, inputs and our outputs, to losses_io/cases.json; then
# tests/losses/ref.py recomputes every loss and gradient with torch autograd in
# float64 (Debian python3-torch, run by /usr/bin/python3).
set_tests_properties(test_losses PROPERTIES FIXTURES_SETUP losses_io)
add_test(NAME losses_torch_ref
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/losses/ref.py
                 ${CMAKE_CURRENT_BINARY_DIR}/losses_io/cases.json)
set_tests_properties(losses_torch_ref PROPERTIES FIXTURES_REQUIRED losses_io
                     ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
