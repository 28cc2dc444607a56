"""The lab's copy of Termux's package index.

Stands for: the `termux-main` apt repository (packages.termux.dev), which this machine cannot
reach. Only the *names* matter and they are real Termux package names, so a deploy that asks
for a Debian-only name (`ninja-build`, `build-essential`'s Debian twin `g++`) fails in the lab
as it would on a phone. Versions are a plausible snapshot (2025) and dependencies are a
simplified subset of the real ones; `lab up` writes them as an apt `Packages` file that the
phone's `pkg` reads.
"""

from __future__ import annotations

from typing import NamedTuple

from llamafleet_lab.termux_programs import package_files


class TermuxPackage(NamedTuple):
    name: str
    version: str
    depends: tuple[str, ...]
    description: str


def _p(name: str, version: str, description: str, *depends: str) -> TermuxPackage:
    return TermuxPackage(name, version, tuple(depends), description)


PACKAGES: tuple[TermuxPackage, ...] = (
    # --- bootstrap: present on every fresh Termux install -----------------------------------
    _p("apt", "2.8.1-1", "Front-end for the dpkg package manager", "dpkg", "libc++", "gpgv"),
    _p("bash", "5.2.37-2", "A sh-compatible shell that incorporates useful features from the Korn shell and C shell", "readline", "ncurses"),
    _p("bzip2", "1.0.8-7", "Tools for compressing and decompressing bz2 files", "libbz2"),
    _p("ca-certificates", "1:2025.02.25", "Common CA certificates"),
    _p("command-not-found", "2.4.0-58", "Suggest installation of packages in interactive shell sessions"),
    _p("coreutils", "9.6-1", "Basic file, shell and text manipulation utilities from the GNU project", "libandroid-support", "libgmp", "libiconv"),
    _p("curl", "8.12.1", "Easy-to-use client-side URL transfer library", "libcurl"),
    _p("dash", "0.5.12-1", "Small POSIX-compliant implementation of /bin/sh"),
    _p("debianutils", "5.21", "Small utilities which are used primarily by the installation scripts of Debian packages"),
    _p("diffutils", "3.11", "Programs (cmp, diff, diff3 and sdiff) related to finding differences between files"),
    _p("dpkg", "1.22.6-1", "Debian package management system", "coreutils", "diffutils", "tar", "xz-utils", "zstd"),
    _p("ed", "1.21", "Classic UNIX line editor"),
    _p("findutils", "4.10.0-1", "Utilities to find files meeting specified criteria and perform various actions on the files which are found"),
    _p("gawk", "5.3.1", "Programming language designed for text processing", "libandroid-support", "libgmp", "libmpfr", "readline"),
    _p("gpgv", "2.4.7", "GNU privacy guard - signature verification tool"),
    _p("grep", "3.11", "Command which searches one or more input files for lines containing a match to a specified pattern", "pcre2"),
    _p("gzip", "1.13", "Standard GNU compressor"),
    _p("inetutils", "2.5-1", "Collection of common network programs", "readline"),
    _p("less", "668", "Terminal pager program used to view the contents of a text file one screen at a time", "ncurses", "pcre2"),
    _p("libacl", "2.3.2", "Library for filesystem ACL support"),
    _p("libandroid-glob", "0.6-2", "Shared library for the glob(3) system function"),
    _p("libandroid-support", "29-1", "Library extending the Android C library (Bionic) for additional multibyte, locale and math support"),
    _p("libbz2", "1.0.8-7", "BZ2 format compression library"),
    _p("libc++", "27c", "C++ Standard Library"),
    _p("libcurl", "8.12.1", "Easy-to-use client-side URL transfer library", "openssl", "zlib", "libnghttp2", "libssh2"),
    _p("libexpat", "2.6.4", "XML parsing C library"),
    _p("libgmp", "6.3.0-2", "Library for arbitrary precision arithmetic"),
    _p("libiconv", "1.18", "An implementation of iconv()"),
    _p("liblzma", "5.6.4", "XZ-format compression library"),
    _p("libmpfr", "4.2.1-1", "C library for multiple-precision floating-point computations"),
    _p("libnghttp2", "1.64.0", "nghttp HTTP 2.0 library"),
    _p("libssh2", "1.11.1", "Client-side C library implementing the SSH2 protocol", "openssl", "zlib"),
    _p("ncurses", "6.5.20240831", "Library for text-based user interfaces in a terminal-independent manner"),
    _p("net-tools", "2.10.0-1", "Configuration tools for Linux networking"),
    _p("openssl", "3.4.1", "Library implementing the SSL and TLS protocols as well as general purpose cryptography functions", "ca-certificates", "zlib"),
    _p("patch", "2.7.6-3", "GNU patch which applies diff files to original files"),
    _p("pcre2", "10.45", "Perl 5 compatible regular expression library"),
    _p("procps", "3.3.17-6", "Utilities that give information about processes using the /proc filesystem", "ncurses"),
    _p("psmisc", "23.7", "Some small useful utilities that use the proc filesystem"),
    _p("readline", "8.2.13", "Library that allow users to edit command lines as they are typed in", "ncurses"),
    _p("sed", "4.9-1", "GNU stream editor for filtering/transforming text"),
    _p("tar", "1.35", "GNU tar archiving utility", "libiconv"),
    _p("termux-am", "0.8.0-1", "Android Oneshot Activity Manager (am) with Termux extensions"),
    _p("termux-am-socket", "1.5.2", "Faster termux-am implementation that connects to a receiver in termux-app"),
    _p("termux-exec", "1:2.1.1", "An exec() wrapper for Termux that makes shebangs and /bin paths work"),
    _p("termux-keyring", "3.12-1", "GPG public keys for the official Termux repositories"),
    _p("termux-licenses", "2.0-4", "Licenses for Termux packages"),
    _p("termux-tools", "1.45.0", "Basic system tools for Termux (termux-wake-lock, termux-info, pkg...)", "termux-am"),
    _p("unzip", "6.0-9", "Tools for working with zip files", "libbz2"),
    _p("util-linux", "2.40.2-2", "Miscellaneous system utilities", "ncurses", "zlib"),
    _p("xz-utils", "5.6.4", "XZ-format compression utilities", "liblzma"),
    _p("zlib", "1.3.1", "Compression library implementing the deflate compression method found in gzip and PKZIP"),
    _p("zstd", "1.5.7", "Zstandard compression"),
    # --- toolchains and build tools ------------------------------------------------------------
    _p("autoconf", "2.72-1", "Creator of shell scripts to configure source code packages", "m4", "make", "perl"),
    _p("automake", "1.17", "Tool for automatically generating Makefile.in files", "autoconf"),
    _p("binutils", "2.43.1", "GNU assembler, linker and binary utilities", "binutils-bin", "binutils-libs"),
    _p("binutils-bin", "2.43.1", "Binaries of the GNU binary utilities", "binutils-libs"),
    _p("binutils-libs", "2.43.1", "Libraries of the GNU binary utilities", "zlib", "zstd"),
    _p("bison", "3.8.2-3", "General-purpose parser generator", "m4"),
    _p("build-essential", "4.1", "A metapackage that installs essential development tools", "autoconf", "automake", "bison", "clang", "cmake", "flex", "libtool", "make", "ninja", "pkg-config"),
    _p("ccache", "4.10.2", "Compiler cache for fast recompilation of C/C++ code", "libc++", "zlib", "zstd"),
    _p("clang", "19.1.7-1", "C language frontend using LLVM", "libc++", "libllvm", "lld", "ndk-sysroot", "libcompiler-rt"),
    _p("cmake", "3.31.6", "Family of tools designed to build, test and package software", "libarchive", "libc++", "libcurl", "libexpat", "jsoncpp", "libuv", "rhash", "zlib"),
    _p("flex", "2.6.4-3", "Fast lexical analyser generator", "m4"),
    _p("gdb", "16.2", "The standard GNU Debugger that runs on many Unix-like systems", "libc++", "ncurses", "readline"),
    _p("golang", "3:1.24.1", "Go programming language compiler"),
    _p("jsoncpp", "1.9.6", "C++ library for interacting with JSON", "libc++"),
    _p("libarchive", "3.7.7-1", "Multi-format archive and compression library", "libbz2", "libiconv", "liblzma", "openssl", "zlib", "zstd"),
    _p("libcompiler-rt", "19.1.7-1", "Compiler runtime libraries for clang"),
    _p("libllvm", "19.1.7-1", "Modular compiler and toolchain technologies library", "libc++", "libxml2", "zlib", "zstd"),
    _p("libtool", "2.5.4", "Generic library support script hiding the complexity of using shared libraries", "bash", "grep", "sed"),
    _p("libuv", "1.50.0", "Support library with a focus on asynchronous I/O"),
    _p("libxml2", "2.13.6", "Library for parsing XML documents", "libiconv", "liblzma", "zlib"),
    _p("lld", "19.1.7-1", "LLVM-based linker", "libllvm"),
    _p("llvm", "19.1.7-1", "LLVM modular compiler and toolchain executables", "libllvm"),
    _p("m4", "1.4.19-4", "Traditional Unix macro processor"),
    _p("make", "4.4.1", "Tool to control the generation of non-source files from source files"),
    _p("ndk-sysroot", "27c-2", "System header and library files from the Android NDK needed for compiling C programs"),
    _p("ninja", "1.12.1", "A small build system with a focus on speed", "libc++"),
    _p("pkg-config", "0.29.2-2", "Helper tool used when compiling applications and libraries"),
    _p("rhash", "1.4.5", "Console utility for calculation and verification of magnet links and a wide range of hash sums"),
    _p("rust", "1.85.0", "Systems programming language focused on safety, speed and concurrency", "clang", "libc++", "openssl", "zlib"),
    # --- languages -------------------------------------------------------------------------------
    _p("nodejs", "23.9.0", "Open Source, cross-platform JavaScript runtime environment", "libc++", "openssl", "c-ares", "libicu", "zlib"),
    _p("nodejs-lts", "22.14.0", "Open Source, cross-platform JavaScript runtime environment (LTS)", "libc++", "openssl", "c-ares", "libicu", "zlib"),
    _p("c-ares", "1.34.4", "Library for asynchronous DNS requests (including name resolves)"),
    _p("libicu", "76.1", "International Components for Unicode library", "libc++"),
    _p("openjdk-17", "17.0.14-1", "Java development kit and runtime", "libandroid-shmem", "zlib"),
    _p("libandroid-shmem", "0.5", "System V shared memory emulation on Android using ashmem"),
    _p("perl", "5.38.2-3", "Capable, feature-rich programming language"),
    _p("python", "3.12.9", "Python 3 programming language intended to enable clear programs", "libandroid-support", "libbz2", "libcrypt", "libexpat", "libffi", "liblzma", "libsqlite", "ncurses", "openssl", "readline", "zlib"),
    _p("python-numpy", "2.2.3", "The fundamental package for scientific computing with Python", "python", "libopenblas"),
    _p("python-pip", "25.0.1", "The PyPA recommended tool for installing Python packages", "python"),
    _p("libcrypt", "0.2-5", "A crypt(3) implementation"),
    _p("libffi", "3.4.7", "Library providing a portable, high level programming interface to various calling conventions"),
    _p("libsqlite", "3.49.1", "Software library that implements a self-contained SQL database engine", "zlib"),
    _p("libopenblas", "0.3.29", "An optimized BLAS library based on GotoBLAS2 1.13 BSD", "libandroid-complex-math"),
    _p("libandroid-complex-math", "0.1-2", "Complex math functions that are missing from Bionic"),
    _p("ruby", "3.4.2", "Dynamic programming language with a focus on simplicity and productivity", "libgmp", "openssl", "readline", "zlib"),
    _p("lua54", "5.4.7-1", "Simple, extensible, embeddable programming language", "readline"),
    # --- services and Termux add-ons --------------------------------------------------------------
    _p("openssh", "9.9p2", "Secure shell for logging into a remote machine", "openssl", "zlib", "ldns", "krb5", "termux-auth"),
    _p("openssh-sftp-server", "9.9p2", "SFTP server module for OpenSSH"),
    _p("ldns", "1.8.4", "Library for simplifying DNS programming", "openssl"),
    _p("krb5", "1.21.3", "The Kerberos network authentication system", "openssl", "libresolv-wrapper"),
    _p("libresolv-wrapper", "1.1.7-4", "A wrapper for the DNS name resolving functions"),
    _p("termux-auth", "1.5.0", "Password authentication utilities for Termux", "openssl"),
    _p("runit", "2.2.0-1", "A UNIX init scheme with service supervision"),
    _p("termux-services", "0.13-1", "Service daemon for Termux", "coreutils", "dpkg", "runit"),
    _p("termux-api", "0.59.1", "Termux API commands (install also the Termux:API app)", "bash", "util-linux", "termux-am"),
    _p("termux-elf-cleaner", "3.0.1", "Cleaner of ELF files for Android"),
    _p("cronie", "1.7.2-1", "Daemon that runs specified programs at scheduled times"),
    _p("proot", "5.1.107-65", "Emulate chroot, bind mount and binfmt_misc for non-root users", "libtalloc"),
    _p("proot-distro", "4.23.0", "Termux official utility for managing proot'ed Linux distributions", "bash", "bzip2", "coreutils", "curl", "findutils", "gzip", "ncurses", "proot", "sed", "tar", "xz-utils"),
    _p("libtalloc", "2.4.2", "Hierarchical, reference counted memory pool system with destructors"),
    # --- network and shell tools ------------------------------------------------------------------
    _p("dnsutils", "9.20.6", "Clients provided with BIND", "openssl", "libuv"),
    _p("iperf3", "3.18", "TCP, UDP, and SCTP network bandwidth measurement tool", "openssl"),
    _p("iproute2", "6.13.0", "Utilities for controlling TCP/IP networking and traffic"),
    _p("mosh", "1.4.0-25", "Mobile shell that supports roaming and intelligent local echo", "libandroid-support", "libc++", "ncurses", "openssl", "protobuf", "zlib"),
    _p("protobuf", "29.3", "Protocol buffers C++ library", "libc++", "zlib"),
    _p("netcat-openbsd", "1.228-1", "TCP/IP swiss army knife, OpenBSD variant"),
    _p("nmap", "7.95-2", "Utility for network discovery and security auditing", "libc++", "openssl", "pcre2", "zlib"),
    _p("rsync", "3.4.1", "Utility that provides fast incremental file transfer", "openssl", "xxhash", "zlib", "zstd", "liblz4"),
    _p("xxhash", "0.8.3", "Extremely fast non-cryptographic hash algorithm"),
    _p("liblz4", "1.10.0", "Fast LZ compression algorithm library"),
    _p("socat", "1.8.0.3", "Relay for bidirectional data transfer between two independent data channels", "openssl", "readline"),
    _p("traceroute", "2.1.6", "Tool to trace the route ip packets go to a network host"),
    _p("wget", "1.25.0", "Commandline tool for retrieving files using HTTP, HTTPS and FTP", "libiconv", "openssl", "pcre2", "libuuid", "zlib"),
    _p("libuuid", "2.40.2-2", "Library for handling universally unique identifiers"),
    _p("git", "2.49.0", "Fast, scalable, distributed revision control system", "libcurl", "libexpat", "libiconv", "less", "openssl", "pcre2", "zlib"),
    _p("git-lfs", "3.6.1", "Git extension for versioning large files", "git"),
    _p("gh", "2.68.1", "GitHub's official command line tool", "git"),
    _p("jq", "1.7.1-3", "Command-line JSON processor", "oniguruma"),
    _p("oniguruma", "6.9.10", "Regular expressions library"),
    _p("htop", "3.3.0-2", "Interactive process viewer for Linux", "ncurses"),
    _p("lsof", "4.99.4", "Lists open files for running Unix processes"),
    _p("man", "1.14.6-4", "Manual page viewer", "less", "mandoc"),
    _p("mandoc", "1.14.6-4", "UNIX manpage compiler", "zlib"),
    _p("nano", "8.3", "Small, free and friendly text editor", "libandroid-support", "ncurses"),
    _p("neovim", "0.10.4", "Ambitious Vim-fork focused on extensibility and agility", "libuv", "libmsgpack", "libvterm", "luajit", "lua51-lpeg", "libunibilium", "tree-sitter"),
    _p("libmsgpack", "6.1.0", "MessagePack implementation for C and C++"),
    _p("libvterm", "0.3.3", "Abstract library implementation of a VT220/xterm/ECMA-48 terminal emulator"),
    _p("luajit", "1:2.1.1741730670", "Just-In-Time Compiler for Lua"),
    _p("lua51-lpeg", "1.1.0-2", "Pattern-matching library for Lua 5.1"),
    _p("libunibilium", "2.1.2", "Terminfo parsing library"),
    _p("tree-sitter", "0.25.3", "An incremental parsing system for programming tools"),
    _p("vim", "9.1.1200", "Vi IMproved - enhanced vi editor", "libiconv", "ncurses"),
    _p("tmux", "3.5a", "Terminal multiplexer", "libevent", "ncurses", "libandroid-support"),
    _p("libevent", "2.1.12-2", "Library that provides asynchronous event notification"),
    _p("screen", "4.9.1-1", "Terminal multiplexer with VT100/ANSI terminal emulation", "ncurses", "libcrypt"),
    _p("tree", "2.2.1", "Recursive directory lister producing a depth indented listing of files"),
    _p("which", "2.21-2", "Shows the full path of (shell) commands"),
    _p("file", "5.46", "Command-line tool that tells you in words what kind of data a file contains", "libmagic"),
    _p("libmagic", "5.46", "Library to identify file types by their magic numbers", "zlib"),
    _p("zip", "3.0-6", "Tools for working with zip files", "libbz2"),
    _p("p7zip", "17.06", "Command-line version of the 7zip compressed file archiver", "libc++"),
    _p("pv", "1.9.31", "Terminal-based tool for monitoring the progress of data through a pipeline"),
    _p("bc", "1.08.1", "Arbitrary precision numeric processing language", "readline"),
    _p("busybox", "1.37.0-1", "Tiny versions of many common UNIX utilities into a single small executable"),
    _p("zsh", "5.9-5", "Shell with lots of features", "libcap", "ncurses", "pcre2"),
    _p("libcap", "2.73", "POSIX 1003.1e capabilities library"),
    _p("fish", "4.0.1", "The user-friendly command line shell", "libc++", "ncurses", "pcre2", "bc"),
    # --- compute libraries ------------------------------------------------------------------------
    _p("ocl-icd", "2.3.2-1", "OpenCL ICD Loader"),
    _p("clinfo", "3.0.23.01.25", "Print all known information about all available OpenCL platforms and devices in the system", "ocl-icd"),
    _p("opencl-headers", "2024.10.24", "OpenCL (Open Computing Language) header files"),
    _p("vulkan-headers", "1.4.309", "Vulkan header files"),
    _p("vulkan-loader-android", "27c", "Vulkan Loader for Android"),
    _p("shaderc", "2024.4", "Collection of tools, libraries and tests for shader compilation", "libc++"),
    _p("ffmpeg", "6.1.2-3", "Tools and libraries to manipulate a wide range of multimedia formats and protocols", "libc++", "openssl", "zlib"),
    _p("sqlite", "3.49.1", "Command line shell for SQLite", "libsqlite", "readline"),
)

# What a fresh Termux install has, plus `openssh`: the lab's phones run sshd on 8022, which the
# user installed with `pkg install openssh` before llamafleet ever saw the phone.
BOOTSTRAP: tuple[str, ...] = (
    "apt", "bash", "bzip2", "ca-certificates", "command-not-found", "coreutils", "curl", "dash",
    "debianutils", "diffutils", "dpkg", "ed", "findutils", "gawk", "gpgv", "grep", "gzip",
    "inetutils", "less", "libacl", "libandroid-glob", "libandroid-support", "libbz2", "libc++",
    "libcurl", "libgmp", "libiconv", "liblzma", "libmpfr", "libnghttp2", "libssh2", "ncurses",
    "net-tools", "openssl", "patch", "pcre2", "procps", "psmisc", "readline", "sed", "tar",
    "termux-am", "termux-am-socket", "termux-exec", "termux-keyring", "termux-licenses",
    "termux-tools", "unzip", "util-linux", "xz-utils", "zlib", "zstd",
    "openssh", "ldns", "krb5", "libresolv-wrapper", "termux-auth",
)


def render_packages_index(architecture: str) -> str:
    """The index in apt's `Packages` format (one paragraph per package), as `pkg` reads it.

    `architecture` should be the dpkg architecture of the machine (`dpkg --print-architecture`):
    a real phone's Termux says aarch64, but the lab's tools really are the machine's binaries,
    and only with the native architecture does `dpkg-query -W` print bare names ("cmake", not
    "cmake:aarch64") as it does on a phone.
    """
    paragraphs = []
    for package in PACKAGES:
        lines = [
            f"Package: {package.name}",
            f"Architecture: {architecture}",
            f"Version: {package.version}",
            "Maintainer: Termux members @termux",
            # Sizes are not modelled; apt-style output prints them, so give a stable number.
            f"Installed-Size: {64 + 16 * len(package.name)}",
        ]
        if package.depends:
            lines.append("Depends: " + ", ".join(package.depends))
        lines.append(f"Description: {package.description}")
        files = package_files(package.name)
        if files:
            # The lab's own field (apt ignores unknown fields): what `pkg install` puts in $PREFIX.
            lines.append("Lab-Files:" + "".join(f"\n {destination}={source}" for destination, source in files))
        paragraphs.append("\n".join(lines) + "\n")
    return "\n".join(paragraphs)
