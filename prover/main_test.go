package prover

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"testing"
	"time"

	"github.com/vsm-project/vsm/prover/engine"
)

// TestMain doubles as the test child: when VSM_TESTCHILD is set the test
// binary re-executed by a supervisor under test behaves as a prover child
// whose start-up and every answer can be told to misbehave.
func TestMain(m *testing.M) {
	if mode, ok := os.LookupEnv("VSM_TESTCHILD"); ok {
		os.Exit(testChild(mode))
	}
	os.Exit(m.Run())
}

// testTask is what the test child understands.
type testTask struct {
	Op  string `json:"op"` // echo, sleep, crash, hang, garbage, badresp, err
	MS  int    `json:"ms"`
	Val string `json:"val"`
}

type testOutput struct {
	Val  string `json:"val"`
	PID  int    `json:"pid"`
	Name string `json:"name"`
}

// babble answers each request with its id and a string for output.
func babble() int {
	fmt.Println(ReadyLine)
	sc := bufio.NewScanner(os.Stdin)
	sc.Buffer(nil, MaxLineBytes)
	for sc.Scan() {
		req, _ := DecodeRequest(sc.Bytes())
		fmt.Printf("{\"id\":%d,\"err_msg\":null,\"output\":\"GPU says hello\"}\n", req.ID)
	}
	return 0
}

func testChild(mode string) int {
	switch mode {
	case "badready":
		fmt.Println("hello, I am not a prover")
		time.Sleep(time.Minute)
		return 0
	case "noready":
		time.Sleep(time.Minute)
		return 0
	case "exit":
		fmt.Fprintln(os.Stderr, "cannot open GPU: no device")
		return 1
	case "silent":
		// Ready, then hung: reads requests and never answers.
		fmt.Println(ReadyLine)
		_, _ = io.Copy(io.Discard, os.Stdin)
		return 0
	case "babble":
		// Answers every request, with output that answers no task.
		return babble()
	case "post":
		// A real prover: the built-in engine, as `vsm wdpost` serves it.
		if err := Serve(context.Background(), os.Stdin, os.Stdout, PoStHandler(engine.Prover{}, nil), ServeOptions{}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		return 0
	}
	name := os.Getenv("VSM_TESTCHILD_NAME")
	h := func(ctx context.Context, raw json.RawMessage) (any, error) {
		var t testTask
		if err := json.Unmarshal(raw, &t); err != nil {
			return nil, err
		}
		switch t.Op {
		case "echo":
		case "sleep":
			time.Sleep(time.Duration(t.MS) * time.Millisecond)
		case "crash":
			fmt.Fprintln(os.Stderr, "panic: simulated crash")
			os.Exit(3)
		case "hang":
			select {}
		case "garbage":
			fmt.Fprintln(os.Stdout, "garbage on stdout {not json")
		case "badresp":
			// A response line with neither err_msg nor output, then (as
			// Serve does) the real answer, which is now a second answer
			// to the same id.
			fmt.Fprintf(os.Stdout, "{\"id\":%s}\n", t.Val)
		case "err":
			return nil, errors.New("task failed: " + t.Val)
		default:
			return nil, fmt.Errorf("unknown op %q", t.Op)
		}
		return testOutput{Val: t.Val, PID: os.Getpid(), Name: name}, nil
	}
	if err := Serve(context.Background(), os.Stdin, os.Stdout, h, ServeOptions{}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}
