# Fails the build if the blob's objects carry a relocation that would need a
# load address: the flat blob is copied to an arbitrary address and never
# relocated, so only PC-relative references are allowed.
# Usage: cmake -DREADELF=... -DOBJECTS="a.o;b.o" -DSTAMP=... -P check_relocs.cmake
foreach(obj ${OBJECTS})
  execute_process(COMMAND ${READELF} -rW ${obj} OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "readelf failed on ${obj}")
  endif()
  string(REGEX MATCHALL "R_X86_64_[A-Z0-9_]+" types "${out}")
  foreach(t ${types})
    if(NOT t MATCHES "^R_X86_64_(PC32|PLT32|PC64|NONE)$")
      message(FATAL_ERROR "restorer blob: ${obj} has a ${t} relocation; the blob must be position independent without relocation (no absolute pointers, no GOT)")
    endif()
  endforeach()
endforeach()
file(TOUCH ${STAMP})
