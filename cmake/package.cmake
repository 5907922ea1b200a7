# Install extras and packages: an Lmod / Environment Modules modulefile made
# at install time (share/modulefiles/stasis/<version>{,.lua}), bash
# completion, docs and examples; a Debian package with CPack
# (`cpack -G DEB` in the build directory; .ci/run installs and uses it).
configure_file(${CMAKE_SOURCE_DIR}/packaging/modulefile.lua.in
               ${CMAKE_BINARY_DIR}/modulefiles/stasis/${PROJECT_VERSION}.lua @ONLY)
configure_file(${CMAKE_SOURCE_DIR}/packaging/modulefile.tcl.in
               ${CMAKE_BINARY_DIR}/modulefiles-tcl/stasis/${PROJECT_VERSION} @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/modulefiles/stasis/${PROJECT_VERSION}.lua
        DESTINATION ${CMAKE_INSTALL_DATADIR}/modulefiles/stasis)
install(FILES ${CMAKE_BINARY_DIR}/modulefiles-tcl/stasis/${PROJECT_VERSION}
        DESTINATION ${CMAKE_INSTALL_DATADIR}/modulefiles-tcl/stasis)
install(FILES ${CMAKE_SOURCE_DIR}/packaging/stasis.bash-completion
        DESTINATION ${CMAKE_INSTALL_DATADIR}/bash-completion/completions RENAME stasis)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DOCDIR})
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs/ DESTINATION ${CMAKE_INSTALL_DOCDIR}
        PATTERN "man" EXCLUDE)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/examples/ DESTINATION ${CMAKE_INSTALL_DOCDIR}/examples)

install(FILES ${CMAKE_SOURCE_DIR}/packaging/apparmor/stasis DESTINATION ${CMAKE_INSTALL_DATADIR}/stasis/apparmor)

set(CPACK_PACKAGE_NAME stasis)
set(CPACK_PACKAGE_VENDOR "Stasis developers")
set(CPACK_PACKAGE_CONTACT "Stasis developers <stasis@example.org>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY "Transparent checkpoint/restart of unmodified Linux programs, without root")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT)
# Runtime libraries found with dpkg-shlibdeps (libzstd, libxxhash, libfmt, libstdc++).
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "environment-modules | lmod")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
# postinst loads the AppArmor profile on Ubuntu >= 23.10 (packaging/apparmor/stasis).
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA ${CMAKE_SOURCE_DIR}/packaging/debian/postinst
    ${CMAKE_SOURCE_DIR}/packaging/debian/postrm)
set(CPACK_STRIP_FILES ON)  # debug info stays in the build tree
set(CPACK_GENERATOR DEB)
include(CPack)
