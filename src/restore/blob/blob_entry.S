// Entry points of the restorer blob that must not depend on compiled C++
// stack frames.  Linked first (section .text.entry), so offset 0 of the
// blob is blob_entry.  Position independent: only relative calls.

  .section .text.entry,"ax",@progbits

// blob_entry: jumped to by the pre-restorer with %rsp = the leader's blob
// stack top and %rdi = BlobArgs*.  Never returns.
  .globl blob_entry
  .hidden blob_entry
  .type blob_entry,@function
blob_entry:
  xor %ebp, %ebp
  and $-16, %rsp
  call blob_main
  ud2

// long blob_clone_thread(struct clone_args* ca /*rdi*/, uint64_t size /*rsi*/,
//                        BlobArgs* args /*rdx*/, long index /*rcx*/)
// Calls clone3(2).  The parent returns the syscall result.  The child starts
// on its own blob stack (clone3 sets %rsp = ca->stack + ca->stack_size) and
// must not touch the parent's stack frame, so it never returns from here: it
// calls blob_thread_main(args, index) with the values kept in callee-saved
// registers, which the child inherits.
  .globl blob_clone_thread
  .hidden blob_clone_thread
  .type blob_clone_thread,@function
blob_clone_thread:
  push %r12
  push %r13
  mov %rdx, %r12
  mov %rcx, %r13
  mov $435, %eax          // __NR_clone3
  syscall
  test %rax, %rax
  jz 1f
  pop %r13
  pop %r12
  ret
1:
  xor %ebp, %ebp
  and $-16, %rsp
  mov %r12, %rdi
  mov %r13, %rsi
  call blob_thread_main
  ud2

// void blob_sigreturn(uint64_t frame_sp): %rsp = the saved ucontext, then
// rt_sigreturn(2), which reloads every register, the FPU state, the signal
// mask and the alternate stack from the frame.
  .globl blob_sigreturn
  .hidden blob_sigreturn
  .type blob_sigreturn,@function
blob_sigreturn:
  mov %rdi, %rsp
  mov $15, %eax           // __NR_rt_sigreturn
  syscall
  ud2

  .section .note.GNU-stack,"",@progbits
