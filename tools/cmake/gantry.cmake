# Helpers shared by every module.

set(GANTRY_WARNINGS -Wall -Wextra -Wno-unused-parameter)

# gantry_library(NAME SOURCES ... DEPS ...): one static library per module, includes rooted at the
# repository (`#include "common/base/status.h"`).
function(gantry_library name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_library(${name} STATIC ${ARG_SOURCES})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(${name} PRIVATE ${GANTRY_WARNINGS})
  target_link_libraries(${name} PUBLIC ${ARG_DEPS})
endfunction()

# gantry_binary(NAME SOURCES ... DEPS ...)
function(gantry_binary name)
  cmake_parse_arguments(ARG "" "" "SOURCES;DEPS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(${name} PRIVATE ${GANTRY_WARNINGS})
  target_link_libraries(${name} PRIVATE ${ARG_DEPS})
endfunction()

# gantry_test(NAME SOURCES ... DEPS ... [LABELS ...] [TIMEOUT s] [RESOURCE_LOCK name]): a
# Catch2 binary whose test cases are each registered with ctest. The Catch2 main is compiled once
# (gantry_catch_main). RESOURCE_LOCK: ctest never runs two cases holding the same lock at once
# (`containerd` for tests that start tools/containerd.sh: one containerd per machine).
function(gantry_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT;RESOURCE_LOCK" "SOURCES;DEPS;LABELS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 300)
  endif()
  set(lock_property)
  if(ARG_RESOURCE_LOCK)
    set(lock_property RESOURCE_LOCK ${ARG_RESOURCE_LOCK})
  endif()
  # ctest splits a test name at ';' into names that match nothing, and such a test would pass
  # without running: refuse them here.
  foreach(source ${ARG_SOURCES})
    get_filename_component(path ${source} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    file(READ ${path} text)
    string(REGEX MATCH "TEST_CASE[A-Z_]*\\(\"[^\"]*;[^\"]*\"" bad "${text}")
    if(bad)
      message(FATAL_ERROR "${path}: a test name contains ';', which ctest "
                          "splits into names that match no test: ${bad}")
    endif()
  endforeach()
  add_executable(${name} ${ARG_SOURCES})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(${name} PRIVATE ${GANTRY_WARNINGS})
  target_link_libraries(${name} PRIVATE gantry_catch_main ${ARG_DEPS})
  # --warn NoTests: a ctest entry whose name matches no Catch2 test fails instead of passing.
  catch_discover_tests(${name}
    TEST_PREFIX "${name}: "
    EXTRA_ARGS --warn NoTests
    PROPERTIES TIMEOUT ${ARG_TIMEOUT} ${lock_property})
  # Catch2's PROPERTIES flattens every value into one ';'-list, so a list-valued property (two
  # ENVIRONMENT entries, two LABELS) falls apart: `GANTRY_SOURCE_DIR=...` became a property name
  # and the test ran without it. List-valued properties are therefore set by a second ctest
  # include, read after the discovered tests (`<name>_TESTS`), where they stay quoted.
  set(environment "GANTRY_BUILD_DIR=${PROJECT_BINARY_DIR}" "GANTRY_SOURCE_DIR=${PROJECT_SOURCE_DIR}")
  set(labels "${ARG_LABELS}")
  set(properties_file "${CMAKE_CURRENT_BINARY_DIR}/${name}_properties.cmake")
  file(CONFIGURE OUTPUT "${properties_file}" @ONLY CONTENT [==[
foreach(test IN LISTS @name@_TESTS)
  set_tests_properties("${test}" PROPERTIES ENVIRONMENT "@environment@" LABELS "@labels@")
endforeach()
]==])
  set_property(DIRECTORY APPEND PROPERTY TEST_INCLUDE_FILES "${properties_file}")
endfunction()

# Boost.Asio/Beast are the slowest headers we have: precompile them for the targets that use them.
function(gantry_precompile_asio target)
  # <utility> first: Boost 1.74's awaitable.hpp uses std::exchange without including it.
  target_precompile_headers(${target} PRIVATE
    <utility> <boost/asio.hpp> <boost/asio/ssl.hpp> <boost/beast/core.hpp> <boost/beast/http.hpp>
    <boost/beast/ssl.hpp> <boost/beast/websocket.hpp> <boost/beast/websocket/ssl.hpp>)
endfunction()

# Adds each listed subdirectory of the current one that has a CMakeLists.txt (modules arrive one
# issue at a time).
function(gantry_add_present_subdirectories)
  foreach(dir ${ARGN})
    if(EXISTS ${CMAKE_CURRENT_SOURCE_DIR}/${dir}/CMakeLists.txt)
      add_subdirectory(${dir})
    endif()
  endforeach()
endfunction()

# gantry_fuzz_target(NAME SOURCE [LIBRARY_OR_SOURCE ...]): a libFuzzer binary (fuzz build only,
# GANTRY_FUZZ=ON), part of the `fuzz` target, run by tools/fuzz.sh from tests/fuzz/corpus/NAME/.
# Each further argument is a library to link or a source file of the project (a path from the
# repository root, e.g. cloudcore/api/selectors.cc) compiled into the target: a decoder is fuzzed
# without building the whole module it lives in.
function(gantry_fuzz_target name source)
  set(libs)
  set(sources ${source})
  foreach(item ${ARGN})
    if(item MATCHES "\\.cc$")
      list(APPEND sources ${PROJECT_SOURCE_DIR}/${item})
    else()
      list(APPEND libs ${item})
    endif()
  endforeach()
  add_executable(${name} ${sources})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR} ${PROJECT_BINARY_DIR})
  target_compile_options(${name} PRIVATE ${GANTRY_WARNINGS})
  target_link_libraries(${name} PRIVATE ${libs})
  target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  add_dependencies(fuzz ${name})
endfunction()
