# Sanitizer and fuzzing builds.
#
#   -DSTASIS_SANITIZE=address,undefined   ASan + UBSan (any list -fsanitize takes)
#   -DSTASIS_FUZZ=ON                      libFuzzer targets in tests/fuzz (clang only;
#                                         implies address,undefined unless set)
#
# stasis_instrument(<target>...) applies the flags.  It is called for the CLI,
# its libraries and the unit tests, but deliberately not for:
#   * stasis_agent: LD_PRELOADed into the user's programs, which are not
#     built with a sanitizer runtime (ASan must be the first DSO loaded, and
#     its shadow mappings would be checkpointed with the program);
#   * the restorer blob (src/restore/blob): freestanding code with no runtime
#     at all, running after the process's memory was replaced;
#   * the test workloads: they are the "user programs" being checkpointed.
set(STASIS_SANITIZE "" CACHE STRING "Comma-separated -fsanitize= list (e.g. address,undefined); empty = none")
option(STASIS_FUZZ "Build the libFuzzer targets of tests/fuzz (requires clang)" OFF)

if(STASIS_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "STASIS_FUZZ=ON needs clang (libFuzzer): configure with -DCMAKE_CXX_COMPILER=clang++ "
                        "-DCMAKE_C_COMPILER=clang")
  endif()
  if(STASIS_SANITIZE STREQUAL "")
    set(STASIS_SANITIZE "address,undefined")
  endif()
endif()

set(STASIS_SANITIZE_FLAGS "")
if(NOT STASIS_SANITIZE STREQUAL "")
  # Every UB report is fatal (a finding, not a log line); frame pointers give
  # readable stacks in the reports.
  set(STASIS_SANITIZE_FLAGS -fsanitize=${STASIS_SANITIZE} -fno-omit-frame-pointer)
  if(STASIS_SANITIZE MATCHES "undefined")
    list(APPEND STASIS_SANITIZE_FLAGS -fno-sanitize-recover=undefined)
  endif()
endif()

function(stasis_instrument)
  foreach(t ${ARGN})
    if(STASIS_SANITIZE_FLAGS)
      target_compile_options(${t} PRIVATE ${STASIS_SANITIZE_FLAGS})
      target_link_options(${t} PRIVATE ${STASIS_SANITIZE_FLAGS})
    endif()
    if(STASIS_FUZZ)
      # Coverage instrumentation for libFuzzer; the fuzz executables add
      # -fsanitize=fuzzer (the libFuzzer main) themselves.
      target_compile_options(${t} PRIVATE -fsanitize=fuzzer-no-link)
    endif()
  endforeach()
endfunction()
