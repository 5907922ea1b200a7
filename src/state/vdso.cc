// vDSO capture and the proxy used at restart.  The vDSO is a small ELF
// shared object (man 7 vdso); its exported functions are read from the
// dynamic symbol table found through PT_DYNAMIC (DT_SYMTAB, DT_STRTAB, and
// DT_HASH or DT_GNU_HASH for the symbol count), with the section headers'
// .dynsym as a fallback.  Format: the System V gABI, elf(5).
#include "state/vdso.h"

#include <elf.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <map>

#include "common/scoped_fd.h"

namespace stasis::state {
namespace {

std::string Hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "0x%" PRIx64, v);
  return b;
}

// Bounds-checked view of the image.
struct Image {
  const uint8_t* p;
  uint64_t len;
  template <typename T>
  const T* At(uint64_t off, uint64_t count = 1) const {
    if (off > len || count > (len - off) / sizeof(T)) return nullptr;
    if (off % alignof(T) != 0) return nullptr;
    return reinterpret_cast<const T*>(p + off);
  }
};

// Number of symbols from a DT_GNU_HASH table: the highest symbol index
// reachable through its buckets and chains, plus one.
uint64_t GnuHashCount(const Image& img, uint64_t off) {
  const auto* h = img.At<uint32_t>(off, 4);
  if (!h) return 0;
  uint32_t nbuckets = h[0], symoffset = h[1], bloom_size = h[2];
  uint64_t buckets_off = off + 16 + uint64_t{bloom_size} * 8;
  const auto* buckets = img.At<uint32_t>(buckets_off, nbuckets);
  if (!buckets) return 0;
  uint32_t max_sym = 0;
  for (uint32_t b = 0; b < nbuckets; ++b) max_sym = std::max(max_sym, buckets[b]);
  if (max_sym < symoffset) return symoffset;
  uint64_t chains_off = buckets_off + uint64_t{nbuckets} * 4;
  for (;;) {  // walk the last chain to its end bit
    const auto* c = img.At<uint32_t>(chains_off + uint64_t{max_sym - symoffset} * 4);
    if (!c) return 0;
    if (*c & 1) return uint64_t{max_sym} + 1;
    ++max_sym;
  }
}

StatusOr<std::string> ReadFile(const std::string& path) {
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) return Status::Errno(path);
  std::string out;
  char buf[16384];
  for (;;) {
    ssize_t n = ::read(fd.get(), buf, sizeof buf);
    if (n < 0) return Status::Errno(path);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

}  // namespace

StatusOr<std::vector<image::VdsoInfo::Symbol>> VdsoSymbols(const uint8_t* vdso, uint64_t len) {
  Image img{vdso, len};
  const auto* eh = img.At<Elf64_Ehdr>(0);
  if (!eh || std::memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64)
    return Status::Error("vDSO: not a 64-bit ELF image");
  const auto* ph = img.At<Elf64_Phdr>(eh->e_phoff, eh->e_phnum);
  if (!ph || eh->e_phentsize != sizeof(Elf64_Phdr)) return Status::Error("vDSO: bad program headers");
  const Elf64_Phdr* load = nullptr;
  const Elf64_Phdr* dyn = nullptr;
  for (int i = 0; i < eh->e_phnum; ++i) {
    if (ph[i].p_type == PT_LOAD && !load) load = &ph[i];
    if (ph[i].p_type == PT_DYNAMIC) dyn = &ph[i];
  }
  if (!load) return Status::Error("vDSO: no PT_LOAD segment");
  // Image offset of a virtual address: the first PT_LOAD maps file offset
  // p_offset at p_vaddr, and the vDSO is mapped from file offset 0.
  auto to_off = [&](uint64_t vaddr) { return vaddr - load->p_vaddr + load->p_offset; };

  uint64_t symtab = 0, strtab = 0, strsz = 0, nsyms = 0;
  if (dyn) {
    const auto* d = img.At<Elf64_Dyn>(dyn->p_offset, dyn->p_filesz / sizeof(Elf64_Dyn));
    if (!d) return Status::Error("vDSO: bad PT_DYNAMIC");
    uint64_t hash = 0, gnu_hash = 0;
    for (uint64_t i = 0; i < dyn->p_filesz / sizeof(Elf64_Dyn) && d[i].d_tag != DT_NULL; ++i) {
      switch (d[i].d_tag) {
        case DT_SYMTAB: symtab = to_off(d[i].d_un.d_ptr); break;
        case DT_STRTAB: strtab = to_off(d[i].d_un.d_ptr); break;
        case DT_STRSZ: strsz = d[i].d_un.d_val; break;
        case DT_HASH: hash = to_off(d[i].d_un.d_ptr); break;
        case DT_GNU_HASH: gnu_hash = to_off(d[i].d_un.d_ptr); break;
        default: break;
      }
    }
    if (hash) {
      if (const auto* h = img.At<uint32_t>(hash, 2)) nsyms = h[1];  // nchain
    } else if (gnu_hash) {
      nsyms = GnuHashCount(img, gnu_hash);
    }
  }
  if (nsyms == 0 && eh->e_shoff != 0) {  // fallback: section headers
    const auto* sh = img.At<Elf64_Shdr>(eh->e_shoff, eh->e_shnum);
    if (sh && eh->e_shentsize == sizeof(Elf64_Shdr)) {
      for (int i = 0; i < eh->e_shnum; ++i) {
        if (sh[i].sh_type != SHT_DYNSYM || sh[i].sh_link >= eh->e_shnum) continue;
        symtab = sh[i].sh_offset;
        nsyms = sh[i].sh_size / sizeof(Elf64_Sym);
        strtab = sh[sh[i].sh_link].sh_offset;
        strsz = sh[sh[i].sh_link].sh_size;
      }
    }
  }
  if (nsyms == 0 || symtab == 0 || strtab == 0) return Status::Error("vDSO: no dynamic symbol table");
  const auto* syms = img.At<Elf64_Sym>(symtab, nsyms);
  if (!syms || strtab >= len) return Status::Error("vDSO: symbol table out of bounds");
  if (strsz == 0 || strsz > len - strtab) strsz = len - strtab;

  std::vector<image::VdsoInfo::Symbol> out;
  for (uint64_t i = 1; i < nsyms; ++i) {
    const Elf64_Sym& s = syms[i];
    int type = ELF64_ST_TYPE(s.st_info), bind = ELF64_ST_BIND(s.st_info);
    if (type != STT_FUNC && type != STT_NOTYPE) continue;
    if (bind != STB_GLOBAL && bind != STB_WEAK) continue;
    if (s.st_shndx == SHN_UNDEF || s.st_shndx >= SHN_LORESERVE) continue;
    if (s.st_name >= strsz) continue;
    const char* name = reinterpret_cast<const char*>(vdso + strtab + s.st_name);
    size_t nlen = strnlen(name, strsz - s.st_name);
    if (nlen == 0 || nlen == strsz - s.st_name) continue;
    uint64_t off = to_off(s.st_value);
    if (off >= len) continue;
    out.push_back({std::string(name, nlen), off});
  }
  if (out.empty()) return Status::Error("vDSO: no exported functions");
  return out;
}

StatusOr<std::vector<KernelVdsoArea>> CurrentVdsoAreas() {
  ASSIGN_OR_RETURN(std::string text, ReadFile("/proc/self/maps"));
  std::vector<KernelVdsoArea> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    unsigned long long s, e;
    int consumed = 0;
    if (std::sscanf(line.c_str(), "%llx-%llx %*s %*s %*s %*s%n", &s, &e, &consumed) < 2 || consumed == 0)
      continue;
    size_t n = static_cast<size_t>(consumed);
    while (n < line.size() && line[n] == ' ') ++n;
    std::string name = line.substr(n);
    if (name == "[vdso]" || name.rfind("[vvar", 0) == 0) out.push_back({s, e, name});
  }
  std::sort(out.begin(), out.end(), [](auto& a, auto& b) { return a.start < b.start; });
  return out;
}

StatusOr<image::VdsoInfo> CaptureVdso(const ProcTarget& target,
                                      const std::vector<image::MemoryArea>& areas) {
  image::VdsoInfo info;
  for (const auto& a : areas) {
    if (a.kind != image::MemoryArea::Kind::kVdso) continue;
    info.vdso_start = a.start;
    info.vdso_end = a.end;
    info.vdso_bytes.resize(a.size());
    RETURN_IF_ERROR(target.ReadMemory(a.start, info.vdso_bytes.data(), a.size()));
    auto syms = VdsoSymbols(info.vdso_bytes.data(), info.vdso_bytes.size());
    if (!syms.ok()) return syms.status().With("pid " + std::to_string(target.pid));
    info.symbols = std::move(*syms);
    break;
  }
  return info;  // no [vdso] (vdso=0 on the kernel command line): empty
}

Status BuildVdsoProxy(const image::VdsoInfo& old_vdso, const uint8_t* new_vdso, uint64_t new_len,
                      uint64_t new_vdso_start, std::vector<uint8_t>* out) {
  const uint64_t old_len = old_vdso.vdso_end - old_vdso.vdso_start;
  ASSIGN_OR_RETURN(auto new_syms, VdsoSymbols(new_vdso, new_len));
  std::map<std::string, uint64_t> by_name;
  for (auto& s : new_syms) by_name.emplace(s.name, s.offset);
  // Distinct old offsets (aliases such as clock_gettime/__vdso_clock_gettime
  // share one) must leave room for a 12-byte trampoline each.
  std::map<uint64_t, uint64_t> targets;  // old offset -> new absolute address
  for (const auto& s : old_vdso.symbols) {
    auto it = by_name.find(s.name);
    if (it == by_name.end())
      return Status::Error("vDSO proxy: the running kernel's vDSO has no " + s.name +
                           ", which the checkpointed program may call");
    uint64_t tgt = new_vdso_start + it->second;
    auto [pos, fresh] = targets.emplace(s.offset, tgt);
    if (!fresh && pos->second != tgt)
      return Status::Error("vDSO proxy: old offset " + Hex(s.offset) + " names two functions");
  }
  constexpr uint64_t kStub = 12;  // movabs $imm64, %rax (10) + jmp *%rax (2)
  out->assign(old_len, 0xCC);     // int3 everywhere else
  uint64_t prev_end = 0;
  for (auto& [off, tgt] : targets) {
    if (off < prev_end || off + kStub > old_len)
      return Status::Error("vDSO proxy: no room for a trampoline at old offset " + Hex(off));
    uint8_t* p = out->data() + off;
    p[0] = 0x48;
    p[1] = 0xB8;
    std::memcpy(p + 2, &tgt, 8);
    p[10] = 0xFF;
    p[11] = 0xE0;
    prev_end = off + kStub;
  }
  return Status::Ok();
}

}  // namespace stasis::state
