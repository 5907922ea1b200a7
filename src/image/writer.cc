// ImageWriter: a pipeline of
//   caller (AddPages: coalesces contiguous runs into <= 4 MiB blocks, copies)
//     -> N compression workers (zstd with a per-thread context, XXH3)
//     -> one writer thread (writes blocks strictly in sequence order).
// The caller never waits for compression or disk unless kMaxInFlight blocks
// are queued, which bounds memory to about kMaxInFlight * 8 MiB.
#include "image/writer.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>
#include <zstd.h>

#include <algorithm>
#include <charconv>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "common/safe_file.h"
#include "common/scoped_fd.h"
#include "image/codec.h"
#include "image/io_util.h"

namespace stasis::image {

StatusOr<CompressionSpec> CompressionSpec::Parse(const std::string& text) {
  if (text == "none") return CompressionSpec{Compression::kNone, 0};
  if (text == "zstd") return CompressionSpec{Compression::kZstd, 1};
  if (text.rfind("zstd:", 0) == 0) {
    const std::string lv = text.substr(5);
    int level = 0;
    auto [ptr, ec] = std::from_chars(lv.data(), lv.data() + lv.size(), level);
    if (ec != std::errc() || ptr != lv.data() + lv.size() || lv.empty() || level < 1 || level > 19)
      return Status::Error("invalid compression level \"" + lv + "\" in \"" + text +
                           "\": expected an integer from 1 to 19");
    return CompressionSpec{Compression::kZstd, level};
  }
  return Status::Error("invalid compression \"" + text + "\": expected none, zstd or zstd:<1-19>");
}

std::string CompressionSpec::ToString() const {
  if (type == Compression::kNone) return "none";
  return "zstd:" + std::to_string(level);
}

namespace {

constexpr uint32_t kMaxBlockPages = 1024;  // 4 MiB of raw page data per block
constexpr size_t kPagesRawCapacity = sizeof(PagesPayloadHeader) + kMaxBlockPages * kPageSize;
constexpr size_t kStagingSize = 8 << 20;       // small blocks are gathered into one write
constexpr size_t kDirectWriteMin = 512 << 10;  // larger payloads are written with writev

struct Buffer {
  std::unique_ptr<uint8_t[]> data;  // default-initialised: no page-touching memset
  size_t capacity = 0;
  void Reserve(size_t n) {
    if (capacity >= n) return;
    data.reset(new uint8_t[n]);
    capacity = n;
  }
};

struct Job {
  BlockType type = BlockType::kPages;
  uint64_t sequence = 0;
  uint32_t area = 0;
  uint64_t first_page = 0;
  uint32_t n_pages = 0;
  Buffer raw;  // uncompressed payload
  size_t raw_len = 0;
  Buffer packed;  // compressed payload, if smaller
  const uint8_t* payload = nullptr;  // raw or packed, set by Process()
  BlockHeader header{};
  bool done = false;

  uint8_t* PageData() { return raw.data.get() + sizeof(PagesPayloadHeader); }
};

class WriterImpl final : public ImageWriter {
 public:
  WriterImpl(std::string path, CompressionSpec spec, int workers, AtomicFile file)
      : path_(std::move(path)), tmp_path_(path_ + ".tmp"), spec_(spec), file_(std::move(file)) {
    staging_.Reserve(kStagingSize);
    n_workers_ = std::clamp(workers, 0, 64);
    max_in_flight_ = static_cast<size_t>(2 * n_workers_ + 2);
    if (n_workers_ > 0) {
      for (int i = 0; i < n_workers_; ++i) workers_.emplace_back([this] { WorkerLoop(); });
      writer_thread_ = std::thread([this] { WriterLoop(); });
    } else {
      sync_cctx_ = ZSTD_createCCtx();
    }
  }

  ~WriterImpl() override {
    StopThreads(/*abort=*/!committed_);
    if (sync_cctx_) ZSTD_freeCCtx(sync_cctx_);
    if (!committed_) file_.Abandon();
  }

  Status WriteFileHeader() {
    FileHeader h{};
    std::memcpy(h.magic, kMagic, sizeof h.magic);
    h.version = kFormatVersion;
    h.header_size = sizeof(FileHeader);
    struct timespec ts{};
    clock_gettime(CLOCK_REALTIME, &ts);
    h.created_ns = static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
    h.header_checksum = internal::HeaderChecksum(h);
    bytes_written_ += sizeof h;
    return internal::WriteAll(file_.fd(), &h, sizeof h, tmp_path_);
  }

  Status SetMetadata(const ProcessImage& meta) override {
    RETURN_IF_ERROR(Usable());
    if (have_metadata_) return Status::Error(tmp_path_ + ": SetMetadata called twice");
    have_metadata_ = true;
    area_pages_.clear();
    for (const auto& a : meta.areas) area_pages_.push_back(a.end > a.start ? (a.end - a.start) / kPageSize : 0);
    std::vector<uint8_t> cbor = EncodeMetadata(meta);
    std::unique_ptr<Job> job = AcquireJob();
    job->type = BlockType::kMetadata;
    job->raw.Reserve(cbor.size());
    std::memcpy(job->raw.data.get(), cbor.data(), cbor.size());
    job->raw_len = cbor.size();
    return Submit(std::move(job));
  }

  Status AddPages(uint32_t area_index, uint64_t first_page, const void* data, uint32_t n_pages) override {
    RETURN_IF_ERROR(Usable());
    if (!have_metadata_) return Status::Error(tmp_path_ + ": AddPages before SetMetadata");
    if (n_pages == 0) return Status::Ok();
    if (area_index >= area_pages_.size() || first_page > area_pages_[area_index] ||
        n_pages > area_pages_[area_index] - first_page) {
      return Status::Error(tmp_path_ + ": AddPages: pages " + std::to_string(first_page) + "+" +
                           std::to_string(n_pages) + " outside area " + std::to_string(area_index));
    }
    const auto* src = static_cast<const uint8_t*>(data);
    while (n_pages > 0) {
      if (cur_ && (cur_->area != area_index || cur_->first_page + cur_->n_pages != first_page ||
                   cur_->n_pages == kMaxBlockPages)) {
        RETURN_IF_ERROR(SubmitCurrent());
      }
      if (!cur_) {
        cur_ = AcquireJob();
        cur_->type = BlockType::kPages;
        cur_->area = area_index;
        cur_->first_page = first_page;
        cur_->n_pages = 0;
        cur_->raw.Reserve(kPagesRawCapacity);
      }
      uint32_t take = std::min(n_pages, kMaxBlockPages - cur_->n_pages);
      std::memcpy(cur_->PageData() + uint64_t{cur_->n_pages} * kPageSize, src, uint64_t{take} * kPageSize);
      cur_->n_pages += take;
      src += uint64_t{take} * kPageSize;
      first_page += take;
      n_pages -= take;
      if (cur_->n_pages == kMaxBlockPages) RETURN_IF_ERROR(SubmitCurrent());
    }
    return Status::Ok();
  }

  StatusOr<uint64_t> Commit() override {
    RETURN_IF_ERROR(Usable());
    if (!have_metadata_) return Status::Error(tmp_path_ + ": Commit before SetMetadata");
    if (cur_) RETURN_IF_ERROR(SubmitCurrent());
    StopThreads(/*abort=*/false);
    RETURN_IF_ERROR(FailureStatus());

    // The end block is never compressed, so a reader can find it at EOF - 72.
    EndPayload end{};
    end.n_blocks = next_sequence_;
    end.stored_pages = stored_pages_;
    end.chain_checksum = internal::Xxh3(chain_.data(), chain_.size() * sizeof(uint64_t));
    BlockHeader h{};
    h.type = BlockType::kEnd;
    h.compression = Compression::kNone;
    h.raw_size = h.stored_size = sizeof end;
    h.payload_checksum = internal::Xxh3(&end, sizeof end);
    h.sequence = next_sequence_;
    h.header_checksum = internal::HeaderChecksum(h);
    Status st = Stage(&h, sizeof h);
    if (st.ok()) st = Stage(&end, sizeof end);
    if (st.ok()) st = FlushStaging();
    // fsync, rename relative to the directory descriptor, fsync of the
    // directory; a file that is not durable is removed (common/safe_file.h).
    if (st.ok()) st = file_.Commit();
    if (!st.ok()) return Fail(st);
    committed_ = true;
    return bytes_written_;
  }

 private:
  Status Usable() {
    if (committed_ || finished_) return Status::Error(tmp_path_ + ": writer already committed");
    return FailureStatus();
  }

  Status FailureStatus() {
    std::lock_guard<std::mutex> lock(mu_);
    return failure_;
  }

  Status Fail(const Status& st) {
    std::lock_guard<std::mutex> lock(mu_);
    if (failure_.ok()) failure_ = st;
    return failure_;
  }

  std::unique_ptr<Job> AcquireJob() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!free_.empty()) {
      auto j = std::move(free_.back());
      free_.pop_back();
      j->done = false;
      return j;
    }
    return std::make_unique<Job>();
  }

  void ReleaseJob(std::unique_ptr<Job> j) {  // mu_ held
    if (free_.size() < max_in_flight_ + 1) free_.push_back(std::move(j));
  }

  Status SubmitCurrent() {
    PagesPayloadHeader ph{cur_->area, cur_->n_pages, cur_->first_page};
    std::memcpy(cur_->raw.data.get(), &ph, sizeof ph);
    cur_->raw_len = sizeof ph + uint64_t{cur_->n_pages} * kPageSize;
    stored_pages_ += cur_->n_pages;
    return Submit(std::move(cur_));
  }

  Status Submit(std::unique_ptr<Job> job) {
    job->sequence = next_sequence_++;
    if (n_workers_ == 0) {
      Process(*job, sync_cctx_);
      Status st = WriteBlock(*job);
      std::lock_guard<std::mutex> lock(mu_);
      ReleaseJob(std::move(job));
      if (!st.ok() && failure_.ok()) failure_ = st;
      return failure_;
    }
    std::unique_lock<std::mutex> lock(mu_);
    space_cv_.wait(lock, [&] { return in_order_.size() < max_in_flight_ || !failure_.ok(); });
    if (!failure_.ok()) return failure_;
    to_compress_.push_back(job.get());
    in_order_.push_back(std::move(job));
    work_cv_.notify_one();
    return Status::Ok();
  }

  // Random data (encrypted, compressed or floating-point noise) gains
  // nothing from zstd but costs it ~1 CPU-second per GiB.  Trial-compress
  // three 64 KiB samples (start, middle, end); if none shrinks by 3% the
  // block is stored raw.  Costs ~5% of a full compression.
  bool LooksCompressible(Job& job, ZSTD_CCtx* cctx) {
    constexpr size_t kSample = 64 * 1024;
    if (job.raw_len < 8 * kSample) return true;
    const size_t bound = ZSTD_compressBound(kSample);
    job.packed.Reserve(bound);
    const size_t offsets[3] = {0, (job.raw_len - kSample) / 2, job.raw_len - kSample};
    for (size_t off : offsets) {
      size_t n = ZSTD_compressCCtx(cctx, job.packed.data.get(), bound, job.raw.data.get() + off, kSample,
                                   spec_.level);
      if (!ZSTD_isError(n) && n < kSample - kSample / 32) return true;
    }
    return false;
  }

  // Compresses (if it pays) and checksums one block; fills its header.
  void Process(Job& job, ZSTD_CCtx* cctx) {
    BlockHeader& h = job.header;
    h = BlockHeader{};
    h.type = job.type;
    h.raw_size = job.raw_len;
    h.sequence = job.sequence;
    h.compression = Compression::kNone;
    job.payload = job.raw.data.get();
    h.stored_size = job.raw_len;
    if (spec_.type == Compression::kZstd && cctx && LooksCompressible(job, cctx)) {
      const size_t bound = ZSTD_compressBound(job.raw_len);
      job.packed.Reserve(bound);
      size_t n = ZSTD_compressCCtx(cctx, job.packed.data.get(), bound, job.raw.data.get(), job.raw_len,
                                   spec_.level);
      // Incompressible data is stored raw: cheaper to read back, never larger.
      if (!ZSTD_isError(n) && n < job.raw_len) {
        h.compression = Compression::kZstd;
        h.stored_size = n;
        job.payload = job.packed.data.get();
      }
    }
    h.payload_checksum = internal::Xxh3(job.payload, h.stored_size);
    h.header_checksum = internal::HeaderChecksum(h);
  }

  void WorkerLoop() {
    ZSTD_CCtx* cctx = ZSTD_createCCtx();
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_cv_.wait(lock, [&] { return !to_compress_.empty() || stopping_; });
      if (to_compress_.empty()) break;
      Job* job = to_compress_.front();
      to_compress_.pop_front();
      const bool abort = aborting_;
      lock.unlock();
      if (abort) {
        job->header = BlockHeader{};
      } else {
        Process(*job, cctx);
      }
      lock.lock();
      job->done = true;
      done_cv_.notify_all();
    }
    lock.unlock();
    ZSTD_freeCCtx(cctx);
  }

  void WriterLoop() {
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      done_cv_.wait(lock, [&] { return (!in_order_.empty() && in_order_.front()->done) ||
                                       (stopping_ && in_order_.empty()); });
      if (in_order_.empty()) break;
      std::unique_ptr<Job> job = std::move(in_order_.front());
      in_order_.pop_front();
      const bool skip = !failure_.ok() || aborting_;
      lock.unlock();
      Status st = skip ? Status::Ok() : WriteBlock(*job);
      lock.lock();
      if (!st.ok() && failure_.ok()) failure_ = st;
      ReleaseJob(std::move(job));
      space_cv_.notify_all();
    }
    const bool abort = aborting_;
    lock.unlock();
    if (!abort) {
      Status st = FlushStaging();
      if (!st.ok()) Fail(st);
    }
  }

  // Writer-thread (or caller after StopThreads) only: appends one block.
  Status WriteBlock(Job& job) {
    const BlockHeader& h = job.header;
    chain_.push_back(h.payload_checksum);  // little-endian host (x86_64 only)
    if (h.stored_size < kDirectWriteMin) {
      RETURN_IF_ERROR(Stage(&h, sizeof h));
      return Stage(job.payload, h.stored_size);
    }
    RETURN_IF_ERROR(FlushStaging());
    struct iovec iov[2] = {{const_cast<BlockHeader*>(&h), sizeof h},
                           {const_cast<uint8_t*>(job.payload), h.stored_size}};
    bytes_written_ += sizeof h + h.stored_size;
    return internal::WritevAll(file_.fd(), iov, 2, tmp_path_);
  }

  Status Stage(const void* data, size_t len) {
    if (staging_len_ + len > kStagingSize) RETURN_IF_ERROR(FlushStaging());
    if (len > kStagingSize) {
      bytes_written_ += len;
      return internal::WriteAll(file_.fd(), data, len, tmp_path_);
    }
    std::memcpy(staging_.data.get() + staging_len_, data, len);
    staging_len_ += len;
    return Status::Ok();
  }

  Status FlushStaging() {
    if (staging_len_ == 0) return Status::Ok();
    size_t n = staging_len_;
    staging_len_ = 0;
    bytes_written_ += n;
    return internal::WriteAll(file_.fd(), staging_.data.get(), n, tmp_path_);
  }

  // Drains the pipeline (or abandons it, from the destructor) and joins.
  void StopThreads(bool abort) {
    if (finished_) return;
    finished_ = true;
    {
      std::lock_guard<std::mutex> lock(mu_);
      aborting_ = abort;
      stopping_ = true;
    }
    work_cv_.notify_all();
    done_cv_.notify_all();
    for (auto& t : workers_) t.join();
    if (writer_thread_.joinable()) writer_thread_.join();
  }

  const std::string path_;
  const std::string tmp_path_;
  const CompressionSpec spec_;
  AtomicFile file_;  // "<path_>.tmp" until Commit
  int n_workers_ = 0;
  size_t max_in_flight_ = 2;
  ZSTD_CCtx* sync_cctx_ = nullptr;

  // Producer (caller) state.
  bool have_metadata_ = false;
  bool committed_ = false;
  bool finished_ = false;  // threads stopped
  std::vector<uint64_t> area_pages_;
  std::unique_ptr<Job> cur_;
  uint64_t next_sequence_ = 0;
  uint64_t stored_pages_ = 0;

  // Writer state (writer thread while it runs, then the caller).
  std::vector<uint64_t> chain_;  // payload checksums of written blocks
  Buffer staging_;
  size_t staging_len_ = 0;
  uint64_t bytes_written_ = 0;

  // Shared, under mu_.
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_, space_cv_;
  std::deque<Job*> to_compress_;
  std::deque<std::unique_ptr<Job>> in_order_;
  std::vector<std::unique_ptr<Job>> free_;
  bool stopping_ = false;
  bool aborting_ = false;
  Status failure_;
  std::vector<std::thread> workers_;
  std::thread writer_thread_;
};

}  // namespace

StatusOr<std::unique_ptr<ImageWriter>> ImageWriter::Create(const std::string& path,
                                                           CompressionSpec compression,
                                                           int worker_threads) {
  if (compression.type == Compression::kZstd && (compression.level < 1 || compression.level > 19))
    return Status::Error(path + ": invalid zstd level " + std::to_string(compression.level));
  if (compression.type != Compression::kZstd && compression.type != Compression::kNone)
    return Status::Error(path + ": unknown compression type");
  // Never through a symlink at "<path>.tmp" (common/safe_file.h).
  ASSIGN_OR_RETURN(AtomicFile file, AtomicFile::Create(path, 0600, /*replace_stale=*/false));
  auto w = std::make_unique<WriterImpl>(path, compression, worker_threads, std::move(file));
  RETURN_IF_ERROR(w->WriteFileHeader());  // on error ~WriterImpl removes the temp file
  return std::unique_ptr<ImageWriter>(std::move(w));
}

}  // namespace stasis::image
