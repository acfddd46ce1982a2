//go:build unix

// Command killchild is the child process of the crash test (package
// killtest): it runs the library until it kills itself at the kill point
// its command line names. The test builds it and runs it; it is not meant
// to be run by hand.
package main

import "github.com/failoverblob/failoverblob/internal/killtest"

func main() { killtest.ChildMain() }
