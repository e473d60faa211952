# moe_add_test(NAME <name> SOURCES <files...> LABELS <labels...> [LIBRARIES <targets...>]
#              [TIMEOUT <seconds>])
#
# One GoogleTest executable per area; each test case becomes a CTest test carrying the labels
# (unit, gradcheck, golden, slow), so `ctest -L unit` runs exactly the fast set. Tests run
# from the source tree's tests/ directory so fixtures are found by relative path.
include(GoogleTest)

function(moe_add_test)
  cmake_parse_arguments(T "" "NAME;TIMEOUT" "SOURCES;LABELS;LIBRARIES" ${ARGN})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 120)
  endif()
  set(target moe_test_${T_NAME})
  add_executable(${target} ${T_SOURCES})
  # -O1 (CMakeLists.txt), and batches of sources as the library (MOE_UNITY).
  set_target_properties(${target} PROPERTIES MOE_TEST_CODE ON UNITY_BUILD ${MOE_UNITY}
                                             UNITY_BUILD_BATCH_SIZE 8)
  target_link_libraries(${target} PRIVATE ${T_LIBRARIES} moe moe_testing moe_options GTest::gtest
                                          GTest::gtest_main)
  gtest_discover_tests(${target}
    WORKING_DIRECTORY ${PROJECT_SOURCE_DIR}/tests
    PROPERTIES LABELS "${T_LABELS}" TIMEOUT ${T_TIMEOUT}
    DISCOVERY_TIMEOUT 60)
endfunction()
