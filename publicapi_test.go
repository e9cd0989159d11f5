package laneway_test

import (
	"bufio"
	"bytes"
	"fmt"
	"go/importer"
	"go/token"
	"go/types"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// TestNoExportedInternalTypes keeps the public API writable by a caller:
// no package outside internal/ exports an identifier whose signature,
// exported fields, methods or alias target name a type from an internal
// package, since a caller outside the module can neither name nor build
// such a type. The packages are read from their compiled export data
// (go list -export), so the scan sees exactly what importers see.
func TestNoExportedInternalTypes(t *testing.T) {
	const module = "github.com/laneway/laneway"
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to read the packages' export data: %v", err)
	}
	cmd := exec.Command(goBin, "list", "-deps", "-export", "-f",
		"{{.ImportPath}}\t{{.Export}}\t{{.Name}}\t{{if .Module}}{{.Module.Path}}{{end}}", module+"/...")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	exports := map[string]string{}
	var public []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "\t")
		if len(f) != 4 {
			t.Fatalf("go list: unexpected line %q", sc.Text())
		}
		path, export, name, mod := f[0], f[1], f[2], f[3]
		exports[path] = export
		if mod == module && name != "main" && !isInternal(path) {
			public = append(public, path)
		}
	}
	if len(public) < 5 {
		t.Fatalf("found only %d public packages (%v): the scan is not seeing the module", len(public), public)
	}
	fset := token.NewFileSet()
	imp := importer.ForCompiler(fset, "gc", func(path string) (io.ReadCloser, error) {
		f, ok := exports[path]
		if !ok || f == "" {
			return nil, fmt.Errorf("no export data for %s", path)
		}
		return os.Open(f)
	})
	var offenders []string
	for _, path := range public {
		pkg, err := imp.Import(path)
		if err != nil {
			t.Fatalf("import %s: %v", path, err)
		}
		offenders = append(offenders, internalTypesIn(pkg)...)
	}
	sort.Strings(offenders)
	if len(offenders) > 0 {
		t.Errorf("%d exported identifiers name internal types (give them root-owned types):\n  %s",
			len(offenders), strings.Join(offenders, "\n  "))
	}
}

// TestInternalTypeScanFindsOffenders: the scan itself reports each way an
// internal type can leak (a sanity check, so the test above can fail).
func TestInternalTypeScanFindsOffenders(t *testing.T) {
	internal := types.NewPackage("example.com/m/internal/x", "x")
	secret := types.NewNamed(types.NewTypeName(token.NoPos, internal, "Secret", nil), types.NewStruct(nil, nil), nil)
	pub := types.NewPackage("example.com/m", "m")
	scope := pub.Scope()
	sig := func(params ...*types.Var) *types.Signature {
		return types.NewSignatureType(nil, nil, nil, types.NewTuple(params...), nil, false)
	}
	v := func(name string, typ types.Type) *types.Var { return types.NewVar(token.NoPos, pub, name, typ) }
	scope.Insert(types.NewFunc(token.NoPos, pub, "F", sig(v("s", types.NewPointer(secret)))))
	scope.Insert(types.NewTypeName(token.NoPos, pub, "Alias", secret)) // an alias
	scope.Insert(types.NewVar(token.NoPos, pub, "V", types.NewMap(types.Typ[types.String], secret)))
	fields := []*types.Var{types.NewField(token.NoPos, pub, "Hook", sig(v("s", secret)), false), types.NewField(token.NoPos, pub, "ok", secret, false)}
	st := types.NewNamed(types.NewTypeName(token.NoPos, pub, "Opts", nil), types.NewStruct(fields, nil), nil)
	scope.Insert(st.Obj())
	scope.Insert(types.NewFunc(token.NoPos, pub, "fine", sig(v("s", secret)))) // unexported: not API
	got := internalTypesIn(pub)
	sort.Strings(got)
	want := []string{
		"example.com/m.Alias: example.com/m/internal/x.Secret",
		"example.com/m.F: example.com/m/internal/x.Secret",
		"example.com/m.Opts.Hook: example.com/m/internal/x.Secret",
		"example.com/m.V: example.com/m/internal/x.Secret",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("scan found:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func isInternal(path string) bool {
	for _, el := range strings.Split(path, "/") {
		if el == "internal" {
			return true
		}
	}
	return false
}

// internalTypesIn lists "pkg.Ident[.Member]: internal/type" for every
// exported identifier of pkg that names an internal type.
func internalTypesIn(pkg *types.Package) []string {
	var out []string
	seen := map[types.Type]bool{}
	var walk func(where string, t types.Type)
	report := func(where string, obj *types.TypeName) {
		if obj.Pkg() != nil && isInternal(obj.Pkg().Path()) {
			out = append(out, where+": "+obj.Pkg().Path()+"."+obj.Name())
		}
	}
	walk = func(where string, t types.Type) {
		if seen[t] {
			return
		}
		seen[t] = true
		defer delete(seen, t) // the same type may leak through several identifiers
		switch t := t.(type) {
		case *types.Alias:
			report(where, t.Obj())
			walk(where, types.Unalias(t))
		case *types.Named:
			report(where, t.Obj())
			for i := 0; i < t.TypeArgs().Len(); i++ {
				walk(where, t.TypeArgs().At(i))
			}
		case *types.Pointer:
			walk(where, t.Elem())
		case *types.Slice:
			walk(where, t.Elem())
		case *types.Array:
			walk(where, t.Elem())
		case *types.Chan:
			walk(where, t.Elem())
		case *types.Map:
			walk(where, t.Key())
			walk(where, t.Elem())
		case *types.Signature:
			for _, tup := range []*types.Tuple{t.Params(), t.Results()} {
				for i := 0; i < tup.Len(); i++ {
					walk(where, tup.At(i).Type())
				}
			}
			for i := 0; i < t.TypeParams().Len(); i++ {
				walk(where, t.TypeParams().At(i).Constraint())
			}
		case *types.Struct:
			for i := 0; i < t.NumFields(); i++ {
				if f := t.Field(i); f.Exported() || f.Embedded() {
					walk(where+"."+f.Name(), f.Type())
				}
			}
		case *types.Interface:
			for i := 0; i < t.NumExplicitMethods(); i++ {
				if m := t.ExplicitMethod(i); m.Exported() {
					walk(where+"."+m.Name(), m.Type())
				}
			}
			for i := 0; i < t.NumEmbeddeds(); i++ {
				walk(where, t.EmbeddedType(i))
			}
		case *types.TypeParam:
			walk(where, t.Constraint())
		case *types.Union:
			for i := 0; i < t.Len(); i++ {
				walk(where, t.Term(i).Type())
			}
		}
	}
	scope := pkg.Scope()
	for _, name := range scope.Names() {
		obj := scope.Lookup(name)
		if !obj.Exported() {
			continue
		}
		where := pkg.Path() + "." + name
		tn, isType := obj.(*types.TypeName)
		if !isType || tn.IsAlias() {
			walk(where, obj.Type())
			continue
		}
		named, ok := types.Unalias(tn.Type()).(*types.Named)
		if !ok {
			continue
		}
		for i := 0; i < named.TypeParams().Len(); i++ {
			walk(where, named.TypeParams().At(i).Constraint())
		}
		walk(where, named.Underlying())
		for i := 0; i < named.NumMethods(); i++ {
			if m := named.Method(i); m.Exported() {
				walk(where+"."+m.Name(), m.Type())
			}
		}
	}
	return out
}
