# MOE_FUZZ: the libFuzzer build (tests/fuzz). Everything, the moe library included, is compiled
# with clang's coverage instrumentation for libFuzzer plus AddressSanitizer and
# UndefinedBehaviorSanitizer, so a fuzz input that reads out of bounds, overflows or trips UB
# stops the run with the input saved. Configure with clang:
#   cmake -S . -B build/fuzz -DMOE_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++
if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "MOE_FUZZ needs clang (libFuzzer); configure with "
                      "-DCMAKE_CXX_COMPILER=clang++ (Debian package clang)")
endif()

set(MOE_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzzer runs under ctest -L fuzz")
set(MOE_FUZZ_LONG_RUNS 10000000 CACHE STRING "Executions of each fuzzer in its long run (label slow in the fuzz build)")

# The library gets the instrumentation without libFuzzer's main(); the fuzz executables link it.
# -O1 and line tables only (after the build type's -O2 -g): crash reports keep file:line, and the
# build takes two thirds of the time. -Wno-pass-failed: the sanitizers keep clang from vectorising
# the `omp simd` loops, which it would otherwise report as a warning for every such loop.
target_compile_options(moe_options INTERFACE -O1 -gline-tables-only -fno-omit-frame-pointer
                       -Wno-pass-failed
                       -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined)
target_link_options(moe_options INTERFACE -fsanitize=address,undefined)
