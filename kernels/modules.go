package kernels

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/kernels/modinfo"
)

// GuestModules are the modules the guest agent needs (patterns allowed).
var GuestModules = []string{"fuse", "virtio_pci", "virtio_console", "pvpanic*"}

// Module is a kernel module file on the host.
type Module struct {
	Name string // canonical module name, "_" for "-", e.g. "virtio_pci"
	Path string // host file, possibly .ko.xz or .ko.zst
}

// Open returns the module's decompressed bytes, what finit_module(2) takes
// without MODULE_INIT_COMPRESSED_FILE.
func (m Module) Open() (io.ReadCloser, error) { return modinfo.Open(m.Path) }

// Modules resolves module names and glob patterns ("pvpanic*"; "-" and "_"
// are the same) against the kernel's modules. It returns the modules to
// load, dependencies first and each once, and the names of the requested
// modules built into the kernel, which need no loading. An exact name that
// is neither a module nor built in is an error; a pattern matching nothing
// is not. A kernel without modules returns nothing.
//
// The unpacked tree has no modules.dep, so dependencies come from each
// module's .modinfo "depends=" field, as depmod would read them.
func (k *Kernel) Modules(patterns ...string) (load []Module, builtin []string, err error) {
	if k.ModulesDir == "" {
		return nil, nil, nil
	}
	files, err := moduleFiles(k.ModulesDir)
	if err != nil {
		return nil, nil, fmt.Errorf("modules of %s: %w", k.Release, err)
	}
	builtins, err := readBuiltin(filepath.Join(k.ModulesDir, "modules.builtin"))
	if err != nil {
		return nil, nil, fmt.Errorf("modules of %s: %w", k.Release, err)
	}
	names := slices.Sorted(maps.Keys(files))
	var roots []string
	for _, pat := range patterns {
		pat = modinfo.Normalize(pat)
		if !strings.ContainsAny(pat, "*?[") {
			switch {
			case files[pat] != "":
				roots = append(roots, pat)
			case builtins[pat]:
				builtin = appendNew(builtin, pat)
			default:
				return nil, nil, fmt.Errorf("module %q not found in %s: neither a module file nor built in", pat, k.ModulesDir)
			}
			continue
		}
		if _, err := path.Match(pat, ""); err != nil {
			return nil, nil, fmt.Errorf("module pattern %q: %w", pat, err)
		}
		for _, n := range names {
			if ok, _ := path.Match(pat, n); ok {
				roots = append(roots, n)
			}
		}
		for _, n := range slices.Sorted(maps.Keys(builtins)) {
			if ok, _ := path.Match(pat, n); ok && files[n] == "" {
				builtin = appendNew(builtin, n)
			}
		}
	}
	o := orderer{files: files, builtins: builtins, state: map[string]int{}}
	for _, n := range roots {
		if err := o.visit(n, nil); err != nil {
			return nil, nil, fmt.Errorf("modules of %s: %w", k.Release, err)
		}
	}
	return o.load, builtin, nil
}

func appendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// orderer puts modules in load order: a depth-first walk that emits a
// module after everything it depends on.
type orderer struct {
	files    map[string]string
	builtins map[string]bool
	state    map[string]int // 1: being visited, 2: emitted
	load     []Module
}

func (o *orderer) visit(name string, chain []string) error {
	switch o.state[name] {
	case 2:
		return nil
	case 1:
		return fmt.Errorf("dependency cycle: %s", strings.Join(slices.Concat(chain, []string{name}), " -> "))
	}
	file := o.files[name]
	if file == "" {
		if o.builtins[name] {
			return nil
		}
		return fmt.Errorf("module %s, needed by %s, not found", name, chain[len(chain)-1])
	}
	o.state[name] = 1
	info, err := modinfo.Read(file)
	if err != nil {
		return err
	}
	for _, dep := range info.Depends() {
		if err := o.visit(dep, slices.Concat(chain, []string{name})); err != nil {
			return err
		}
	}
	o.state[name] = 2
	o.load = append(o.load, Module{Name: name, Path: file})
	return nil
}

// moduleFiles maps every module's name to its file below dir. Where two
// files have the same name, the one found first in lexical order wins.
func moduleFiles(dir string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		if name, ok := modinfo.ModuleName(d.Name()); ok {
			if _, dup := files[name]; !dup {
				files[name] = p
			}
		}
		return nil
	})
	return files, err
}

// readBuiltin returns the names of the modules listed in a
// modules.builtin file (one path such as "kernel/fs/fuse/fuse.ko" a line).
// A missing file means nothing is known to be built in.
func readBuiltin(file string) (map[string]bool, error) {
	builtins := map[string]bool{}
	f, err := os.Open(file)
	if errors.Is(err, fs.ErrNotExist) {
		return builtins, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if name, ok := modinfo.ModuleName(strings.TrimSpace(sc.Text())); ok {
			builtins[name] = true
		}
	}
	return builtins, sc.Err()
}
