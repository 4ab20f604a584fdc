# Helpers shared by every folder's CMakeLists.txt.

# nbdpcie_unit_test(NAME SOURCES... LIBS lib...)
# A CMocka unit test program registered with CTest under the label "unit".
# Every unit test also runs in the sanitizer build (label "san").
function(nbdpcie_unit_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} PkgConfig::CMOCKA)
  add_test(NAME ${name} COMMAND ${name})
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 60)
  endif()
  set_tests_properties(${name} PROPERTIES LABELS "unit;san" TIMEOUT ${T_TIMEOUT})
endfunction()

# nbdpcie_fuzz_target(NAME SOURCES... LIBS lib... CORPUS dir RUNS n)
# A libFuzzer target, built only with -DNBDPCIE_FUZZ=ON (clang); CTest runs it
# for RUNS executions from the seed corpus under ASan+UBSan (label "fuzz").
function(nbdpcie_fuzz_target name)
  cmake_parse_arguments(F "" "CORPUS;RUNS" "SOURCES;LIBS" ${ARGN})
  if(NOT NBDPCIE_FUZZ)
    return()
  endif()
  add_executable(${name} ${F_SOURCES})
  target_compile_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_options(${name} PRIVATE -fsanitize=fuzzer,address,undefined)
  target_link_libraries(${name} PRIVATE ${F_LIBS})
  if(NOT F_RUNS)
    set(F_RUNS 200000)
  endif()
  set(work ${CMAKE_CURRENT_BINARY_DIR}/${name}-corpus)
  add_test(NAME ${name}
           COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
                   ${CMAKE_SOURCE_DIR}/scripts/run-fuzz.sh $<TARGET_FILE:${name}>
                   ${F_CORPUS} ${work} ${F_RUNS})
  set_tests_properties(${name} PROPERTIES LABELS "fuzz;san" TIMEOUT 600)
endfunction()
