// vDSO and vvar: capture and restore side by side.
//
// The vDSO is kernel-provided code that the image's libc calls through saved
// pointers (clock_gettime, gettimeofday, time, getcpu).  At restart the new
// kernel's vDSO must end up serving those addresses.  Nothing about the
// layout is assumed; the kernel is probed:
//   * if the running kernel's vDSO is byte-identical to the image's, the new
//     vDSO and its vvar areas are moved (mremap) to where the old ones were
//     (DMTCP does this, and aborts otherwise);
//   * otherwise the new vDSO stays at a free address and the old vDSO's
//     range is filled with a proxy: at each exported symbol's old offset a
//     jump to the same symbol of the new vDSO (CRIU's approach,
//     criu/pie/parasite-vdso.c).  STASIS_VDSO_PROXY=1 forces the proxy.
// Symbols come from the vDSO's ELF dynamic symbol table (man 7 vdso).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "image/model.h"
#include "state/proc_target.h"

namespace stasis::state {

// Reads the target's [vdso] bytes and exported symbols.
StatusOr<image::VdsoInfo> CaptureVdso(const ProcTarget& target,
                                      const std::vector<image::MemoryArea>& areas);

// The current process's vDSO/vvar areas from /proc/self/maps, sorted by address.
struct KernelVdsoArea { uint64_t start = 0, end = 0; std::string name; };
StatusOr<std::vector<KernelVdsoArea>> CurrentVdsoAreas();

// Parses exported STT_FUNC symbols of a vDSO image held in memory.
StatusOr<std::vector<image::VdsoInfo::Symbol>> VdsoSymbols(const uint8_t* vdso, uint64_t len);

// Builds the proxy page(s) for the old vDSO range: `out` (old vdso size
// bytes) receives, at each old symbol offset, a jump to `new_vdso_start` +
// the new offset of the same symbol.  Errors if a symbol the image used is
// missing from the new vDSO.
Status BuildVdsoProxy(const image::VdsoInfo& old_vdso, const uint8_t* new_vdso, uint64_t new_len,
                      uint64_t new_vdso_start, std::vector<uint8_t>* out);

}  // namespace stasis::state
