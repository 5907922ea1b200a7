#include "coordinator/credential.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include <fmt/format.h>

#include "common/safe_file.h"
#include "common/scoped_fd.h"
#include "job/runtime_dir.h"

namespace stasis::coordinator {

namespace {

constexpr size_t kSecretBytes = 32;

std::string Hex(const unsigned char* p, size_t n) {
  static const char* kDigits = "0123456789abcdef";
  std::string s;
  s.reserve(2 * n);
  for (size_t i = 0; i < n; ++i) {
    s += kDigits[p[i] >> 4];
    s += kDigits[p[i] & 15];
  }
  return s;
}

std::string Unhex(const std::string& hex) {
  std::string raw;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    auto nib = [](char c) { return c <= '9' ? c - '0' : c - 'a' + 10; };
    raw += static_cast<char>(nib(hex[i]) << 4 | nib(hex[i + 1]));
  }
  return raw;
}

}  // namespace

StatusOr<std::string> LocalSecret::PathFor(uint16_t port) {
  ASSIGN_OR_RETURN(std::string base, job::RuntimeBaseDir());
  return fmt::format("{}/coordinator-{}.secret", base, port);
}

StatusOr<std::unique_ptr<LocalSecret>> LocalSecret::Create(const std::string& path) {
  std::string hex = job::RandomHex(kSecretBytes);
  RETURN_IF_ERROR(WriteFileAtomic(path, hex + "\n", 0600).With("coordinator credential"));
  std::unique_ptr<LocalSecret> s(new LocalSecret(Unhex(hex), path));
  s->owns_file_ = true;
  return s;
}

void LocalSecret::Retire() {
  if (!owns_file_) return;
  owns_file_ = false;
  ::unlink(source_.c_str());
}

StatusOr<std::unique_ptr<LocalSecret>> LocalSecret::Load(const std::string& path) {
  const std::string what = "the coordinator's credential " + path;
  ScopedFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK));
  if (!fd) return Status::Errno(what);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return Status::Errno(what);
  if (!S_ISREG(st.st_mode)) return Status::Error(what + ": not a regular file");
  if (st.st_uid != ::geteuid()) {
    return Status::Error(fmt::format("{}: owned by uid {}, not by you (uid {})", what, st.st_uid, ::geteuid()));
  }
  if ((st.st_mode & 077) != 0) {
    return Status::Error(fmt::format("{}: mode {:o} lets other users read it (must be 0600)", what, st.st_mode & 0777));
  }
  char buf[2 * kSecretBytes + 2];
  ssize_t n;
  do {
    n = ::read(fd.get(), buf, sizeof buf);
  } while (n < 0 && errno == EINTR);
  if (n < 0) return Status::Errno(what + ": read");
  std::string hex(buf, static_cast<size_t>(n));
  while (!hex.empty() && (hex.back() == '\n' || hex.back() == '\r')) hex.pop_back();
  if (hex.size() != 2 * kSecretBytes || hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
    return Status::Error(what + ": malformed (expected " + std::to_string(2 * kSecretBytes) + " hex digits)");
  }
  return std::unique_ptr<LocalSecret>(new LocalSecret(Unhex(hex), path));
}

std::unique_ptr<LocalSecret> LocalSecret::FromBytes(std::string secret, std::string source) {
  return std::unique_ptr<LocalSecret>(new LocalSecret(std::move(secret), std::move(source)));
}

std::string LocalSecret::Prove(const std::string& label, const std::string& challenge) const {
  // The label and a NUL separate the two directions' messages.
  std::string msg = label;
  msg += '\0';
  msg += challenge;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  return Hex(mac, len);
}

bool LocalSecret::Verify(const std::string& label, const std::string& challenge, const std::string& token) const {
  const std::string want = Prove(label, challenge);
  return token.size() == want.size() && CRYPTO_memcmp(token.data(), want.data(), want.size()) == 0;
}

}  // namespace stasis::coordinator
