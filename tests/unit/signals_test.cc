// Tests of src/state/signals: control block -> image -> blob arguments.
#include <gtest/gtest.h>
#include <signal.h>

#include <memory>

#include "state/signals.h"

namespace stasis::state {
namespace {

TEST(Signals, CaptureAndPrepareRoundTrip) {
  auto cb = std::make_unique<agent::ControlBlock>();
  for (int i = 0; i < 64; ++i) cb->sigactions[i] = {0x1000u + i, 0x04000000u, 0x2000, 1ull << i};
  cb->itimers[0] = {1000, 500};
  cb->itimers[2] = {0, 250};
  cb->n_shared_pending = 2;
  cb->shared_pending[0].signo = SIGUSR1;
  cb->shared_pending[0].siginfo[0] = SIGUSR1;
  cb->shared_pending[1].signo = SIGRTMIN + 1;
  cb->shared_pending[1].siginfo[127] = 0x5a;

  image::ProcessImage img;
  CaptureSignals(*cb, &img);
  EXPECT_EQ(img.sigactions[SIGINT - 1].handler, 0x1000u + SIGINT - 1);
  EXPECT_EQ(img.sigactions[63].mask, 1ull << 63);
  EXPECT_EQ(img.sigactions[5].flags, 0x04000000u);
  EXPECT_EQ(img.itimers[0].interval_us, 1000u);
  EXPECT_EQ(img.itimers[0].value_us, 500u);
  EXPECT_EQ(img.itimers[2].value_us, 250u);
  ASSERT_EQ(img.shared_pending.size(), 2u);
  EXPECT_EQ(img.shared_pending[1].signo, SIGRTMIN + 1);
  EXPECT_EQ(img.shared_pending[1].siginfo[127], 0x5a);

  auto args = std::make_unique<restore::BlobArgs>();
  ASSERT_TRUE(PrepareSignals(img, args.get()).ok());
  EXPECT_EQ(args->sigactions[SIGINT - 1].handler, 0x1000u + SIGINT - 1);
  EXPECT_EQ(args->sigactions[10].restorer, 0x2000u);
  EXPECT_EQ(args->itimers[0].interval_us, 1000u);
  EXPECT_EQ(args->itimers[2].value_us, 250u);
  ASSERT_EQ(args->n_shared_pending, 2);
  EXPECT_EQ(args->shared_pending[0].signo, SIGUSR1);
  EXPECT_EQ(args->shared_pending[1].siginfo[127], 0x5a);
}

TEST(Signals, UntrustedCountIsClamped) {
  auto cb = std::make_unique<agent::ControlBlock>();
  cb->n_shared_pending = 100000;
  image::ProcessImage img;
  CaptureSignals(*cb, &img);
  EXPECT_EQ(img.shared_pending.size(), static_cast<size_t>(agent::kMaxSharedPending));
  cb->n_shared_pending = -3;
  CaptureSignals(*cb, &img);
  EXPECT_TRUE(img.shared_pending.empty());
}

TEST(Signals, PrepareRejectsTooManyOrBadSignals) {
  auto args = std::make_unique<restore::BlobArgs>();
  image::ProcessImage img;
  image::PendingSignal p;
  p.signo = SIGUSR1;
  img.shared_pending.assign(agent::kMaxSharedPending + 1, p);
  EXPECT_FALSE(PrepareSignals(img, args.get()).ok());
  img.shared_pending.assign(1, p);
  img.shared_pending[0].signo = 65;
  EXPECT_FALSE(PrepareSignals(img, args.get()).ok());
}

}  // namespace
}  // namespace stasis::state
