# kernels.cmake - the backward kernels of src/tensor against PyTorch autograd
# (float64, Debian's python3-torch via /usr/bin/python3). The C side writes its
# inputs and outputs with `test_kernels_grad --dump DIR`; tests/kernels/ref.py
# recomputes and compares (1e-4 abs). The finite-difference checks run as the
# plain `test_kernels_grad` cmocka test.
add_test(NAME kernels_torch_ref
         COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/kernels/ref.py
                 $<TARGET_FILE:test_kernels_grad> ${CMAKE_CURRENT_BINARY_DIR}/kernels_dump)
set_tests_properties(kernels_torch_ref PROPERTIES ENVIRONMENT "${TN_TEST_ENV}" TIMEOUT 600)
