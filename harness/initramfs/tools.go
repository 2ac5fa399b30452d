//go:build tools

package initramfs

// gobusybox compiles these commands from this module, so go.sum must hold
// every module they import; this file (never built) keeps them there.
import (
	_ "github.com/u-root/u-root/cmds/core/init"
)
