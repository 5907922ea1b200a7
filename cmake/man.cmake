# Man pages, generated at build time from `stasis --help` and each
# subcommand's --help (help2man) plus docs/man/*.h2m and docs/image-format.md
# (scripts/gen_man.sh), so they cannot drift from the command line.
find_program(HELP2MAN help2man)
if(NOT HELP2MAN)
  message(STATUS "help2man not found: man pages are not built (apt-get install help2man)")
  return()
endif()
file(GLOB STASIS_MAN_INCLUDES CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/docs/man/*.h2m)
set(STASIS_MAN_DIR ${CMAKE_BINARY_DIR}/man)
add_custom_command(
  OUTPUT ${STASIS_MAN_DIR}/man1/stasis.1 ${STASIS_MAN_DIR}/man5/stasis-image.5
  COMMAND ${CMAKE_SOURCE_DIR}/scripts/gen_man.sh $<TARGET_FILE:stasis> ${CMAKE_SOURCE_DIR}
          ${STASIS_MAN_DIR} ${PROJECT_VERSION}
  DEPENDS stasis ${STASIS_MAN_INCLUDES} ${CMAKE_SOURCE_DIR}/docs/image-format.md
          ${CMAKE_SOURCE_DIR}/scripts/gen_man.sh ${CMAKE_SOURCE_DIR}/scripts/md2man.py
  COMMENT "Generating man pages from --help"
  VERBATIM)
add_custom_target(man ALL DEPENDS ${STASIS_MAN_DIR}/man1/stasis.1)
install(DIRECTORY ${STASIS_MAN_DIR}/ DESTINATION ${CMAKE_INSTALL_MANDIR})
