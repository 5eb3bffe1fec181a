// Package flagenv gives every flag of a flag.FlagSet a matching environment
// variable: prefix + the flag name upper-cased, dashes as underscores
// ("http-addr" -> "HTTP_ADDR"). A flag given on the command line wins. It is
// used by the commands' mains only; packages receive config structs.
package flagenv

import (
	"errors"
	"flag"
	"fmt"
	"slices"
	"strings"
)

// Name returns the environment variable of flag name.
func Name(prefix, name string) string {
	return prefix + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// Apply sets every flag of fs that was not set on the command line (call it
// after fs.Parse) from its environment variable, read through getenv, except
// the flags named in skip. It reports every value that does not parse,
// naming the variable.
func Apply(fs *flag.FlagSet, prefix string, getenv func(string) string, skip ...string) error {
	set := make(map[string]bool)
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || slices.Contains(skip, f.Name) {
			return
		}
		env := Name(prefix, f.Name)
		if v := getenv(env); v != "" {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Errorf("environment %s: %w", env, err))
			}
		}
	})
	return errors.Join(errs...)
}
