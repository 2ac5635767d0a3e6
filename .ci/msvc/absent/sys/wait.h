/* .ci/msvc/absent/sys/wait.h: a POSIX header that cl.exe's C library does not have
 * (Wine's MSVC-style headers, which .ci/msvc.sh compiles against, do). */
#error "<sys/wait.h> is POSIX: cl.exe has no such header (guard it with #ifndef _WIN32)"
