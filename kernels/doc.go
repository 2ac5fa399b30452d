// Package kernels finds the Linux kernels fusematrix boots: it resolves a
// name such as "debian:6.12/cloud" to the newest matching kernel package in
// Debian's archive, downloads and verifies it without apt or dpkg, unpacks
// the parts a guest needs (image, config, modules) into a cache, and works
// out which modules a guest must load, dependencies first. It also builds
// kernels from a source tree with the project's config fragment (Build,
// and "src:DIR" names). The same archive access, checks and cache give a
// FUSE daemon packaged by Debian a root of its own to run in: the package
// and its run-time closure, unpacked (FetchSysroot).
//
// Each job has its file:
//
//	kernels.go   Options and Kernel; Resolve, Fetch and ResolveHeld hand
//	             a name to the job that makes its kernel
//	names.go     the grammar of "debian:" names
//	catalog.go   the catalog format: named kernels, matrices, daemon sections
//	resolve.go   Debian resolution: a name to packages (Lookup, Resolution)
//	packages.go  choosing among the indexes' packages; meta packages
//	             followed to the parts to unpack
//	archive.go   reaching the archive: mirrors, the keyring InRelease files
//	             are checked with, apt's Valid-Until policy
//	install.go   a Debian kernel downloaded, unpacked and put in the cache
//	cache.go     the cache: its root, entries and their manifests, claiming
//	             an entry, loading and checking one
//	cachekey.go  keys for caches kept outside fusematrix (CI)
//	local.go     a kernel given as a file
//	modules.go   the modules a guest loads, dependencies first
//	config.go    the FUSE options of a kernel's config
//	build.go     source builds (Build, "src:" names), with make.go (make
//	             under a guard) and srctree.go (what a build reads of a tree)
//	source.go    Debian's kernel source package, unpacked (DebianSource)
//	history.go   every packaged build from one kernel to another (History)
//	sysroot.go   a Debian package and its run-time closure unpacked into
//	             a tree a daemon runs in (FetchSysroot), from whole indexes
//	prune.go     removing what the catalog no longer uses (Prune)
//	list.go      the kernels list: a document for programs (List), a table
//
// The formats and protocols it reads have packages of their own, leaves
// that import the standard library and third-party modules only, never
// this package nor one another: kernels/debian (the archive: apt sources,
// InRelease, Packages indexes, downloads, version order), kernels/deb
// (.deb files), kernels/modinfo (module metadata), kernels/kconfig (.config
// files and fragments) and kernels/flock (the caches' file lock).
// kernels/internal/fakearchive fabricates Debian's side for tests.
//
// This package ties those together and imports nothing else of fusematrix:
// the harness and the command import it, never the other way round (its
// external test package boots kernels through the harness). TestImports
// holds every package here to what its doc says it imports.
package kernels
