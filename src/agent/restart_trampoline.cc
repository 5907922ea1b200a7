// The last code of a restart that each thread runs before returning to the
// program, placed in the agent (which is part of every image) rather than in
// the restorer blob, so that the restorer region can be unmapped without
// pulling it from under a thread that is still on its way out.
//
//   void stasis_restart_trampoline(uint64_t frame_sp,          // %rdi
//                                  uint32_t* threads_returned,  // %rsi
//                                  uint64_t n_threads,          // %rdx
//                                  uint64_t* restorer_range);   // %rcx: {start, len}
//
// Switches to the thread's own stack (the saved signal frame), counts its
// arrival; the n-th arrival knows every other thread has left the region,
// unmaps it and clears the range (so the next checkpoint does not exclude
// it); then rt_sigreturn(2) resumes the thread exactly where the checkpoint
// signal interrupted it.  No stack, no libc, no locks.
#include "agent/agent_internal.h"

extern "C" void stasis_restart_trampoline(uint64_t, uint32_t*, uint64_t, uint64_t*);

asm(R"(
  .text
  .globl stasis_restart_trampoline
  .hidden stasis_restart_trampoline
  .type stasis_restart_trampoline,@function
stasis_restart_trampoline:
  mov %rdi, %rsp              # off the restorer's stack for good
  mov $1, %eax
  lock xadd %eax, (%rsi)
  add $1, %eax
  cmp %edx, %eax
  jne 1f
  mov %rcx, %r8               # syscall clobbers %rcx and %r11
  mov (%r8), %rdi
  mov 8(%r8), %rsi
  test %rsi, %rsi
  jz 2f
  mov $11, %eax               # munmap(start, len)
  syscall
2:
  movq $0, (%r8)
  movq $0, 8(%r8)
1:
  mov $15, %eax               # rt_sigreturn
  syscall
  ud2
  .size stasis_restart_trampoline, .-stasis_restart_trampoline
)");

namespace stasis::agent {
namespace {

// Runs in every process, with or without a supervisor: an image can only
// come from a process where the agent was active, and then this is set.
__attribute__((constructor)) void RegisterRestartTrampoline() {
  g_cb.restart_trampoline = reinterpret_cast<uint64_t>(&stasis_restart_trampoline);
}

}  // namespace
}  // namespace stasis::agent
