package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/t2m/t2m/internal/rendezvous"
	"github.com/t2m/t2m/train"
)

// gpusFlag is --gpus of train (forTrain) and of eval and baseline.
func gpusFlag(forTrain bool) cli.Flag {
	what := "the prompts' generation batches are shared out and the outputs gathered with NCCL; the outputs are one GPU's"
	if forTrain {
		what = "each update's micro-batches are shared out and the gradients summed with NCCL; the sequences per update " +
			"stay --batch-size × --grad-accum (--grad-accum must be a multiple of N)"
	}
	return &cli.IntFlag{Name: "gpus", Value: 1, Usage: "data parallel over N GPUs of this host, one process per GPU: " + what +
		". Under torchrun or SLURM (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT set) leave it out: each process is then one rank"}
}

// ranked runs a command's action as one process of a data-parallel run, or launches one:
//   - with RANK/WORLD_SIZE (torchrun's variables, or SLURM's) in the environment, this process is one rank:
//     it joins the group (NCCL on the GPU) and calls action with it; ranks other than 0 print nothing but
//     their errors;
//   - with --gpus N > 1, it starts N copies of this command line, one per GPU of this host, as the ranks of
//     one run (see launchRanks) and waits for them;
//   - otherwise it calls action with no group.
func ranked(c *cli.Context, what string, action func(group train.Collective, quiet bool) error) error {
	env, inWorld, err := rendezvous.FromEnv(os.Getenv)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	n := c.Int("gpus")
	switch {
	case n < 1:
		return fmt.Errorf("%s: --gpus %d must be ≥ 1", what, n)
	case inWorld && c.IsSet("gpus") && n != env.World:
		return fmt.Errorf("%s: --gpus %d, but the environment says this process is rank %d of WORLD_SIZE %d: under a launcher "+
			"(torchrun, srun) leave --gpus out", what, n, env.Rank, env.World)
	case inWorld && env.World > 1:
		dev, err := parallelDevice(c, what, env.World)
		if err != nil {
			return err
		}
		group, err := dev.NewCollective(env.Rank, env.World, env.LocalRank, env.Addr)
		if err != nil {
			return fmt.Errorf("%s: rank %d of %d: joining the group: %w", what, env.Rank, env.World, err)
		}
		defer group.Close()
		return action(group, env.Rank != 0)
	case n > 1:
		dev, err := parallelDevice(c, what, n)
		if err != nil {
			return err
		}
		if dev.Count != nil {
			have, err := dev.Count()
			if err != nil {
				return fmt.Errorf("%s: --gpus %d: %w", what, n, err)
			}
			if have < n {
				return fmt.Errorf("%s: --gpus %d, but this machine has %d GPU(s) (CUDA_VISIBLE_DEVICES=%q): ask for at most %d",
					what, n, have, os.Getenv("CUDA_VISIBLE_DEVICES"), have)
			}
		}
		return launchRanks(c, n)
	}
	return action(nil, false)
}

// parallelDevice is the registry's device that runs a data-parallel run of n ranks: cuda.
func parallelDevice(c *cli.Context, what string, n int) (train.Device, error) {
	if d := c.String("device"); d != "auto" && d != "cuda" {
		return train.Device{}, fmt.Errorf("%s: --gpus %d needs --device cuda (or auto): data-parallel runs use NVIDIA GPUs and NCCL, not --device %s", what, n, d)
	}
	dev, ok := train.LookupDevice("cuda")
	if !ok {
		return train.Device{}, fmt.Errorf("%s: --gpus %d: %w", what, n, train.ErrNoCUDA)
	}
	if dev.NewCollective == nil {
		return train.Device{}, fmt.Errorf("%s: --gpus %d: this binary's cuda device cannot run data-parallel", what, n)
	}
	if err := dev.Usable(); err != nil {
		return train.Device{}, fmt.Errorf("%s: --gpus %d: %w", what, n, err)
	}
	return dev, nil
}

// launchRanks runs this command line n times, as ranks 0..n-1 of one run on this host (the environment
// of torchrun --nproc-per-node n: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR 127.0.0.1 and
// a free MASTER_PORT), each in a process group of its own so that Ctrl-C reaches them once, through this
// process. Rank 0's output is this command's; the others' lines are prefixed "[rank i] ". When a rank fails,
// the others are killed at once (they would wait for it in the next all-reduce; checkpoints are written
// atomically, so the last one is intact) and the error says which rank failed. An interrupt is passed on to
// every rank, which stop together after the current update (train) or batch.
func launchRanks(c *cli.Context, n int) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("--gpus %d: finding this program to start its ranks: %w", n, err)
	}
	port, err := freePort()
	if err != nil {
		return fmt.Errorf("--gpus %d: %w", n, err)
	}
	errOut := c.App.ErrWriter
	if errOut == nil {
		errOut = os.Stderr
	}
	sig := make(chan os.Signal, 2)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	procs := make([]*exec.Cmd, 0, n)
	var copying sync.WaitGroup
	for r := range n {
		cmd := exec.Command(exe, os.Args[1:]...)
		cmd.Env = append(os.Environ(), "RANK="+strconv.Itoa(r), "WORLD_SIZE="+strconv.Itoa(n), "LOCAL_RANK="+strconv.Itoa(r),
			"LOCAL_WORLD_SIZE="+strconv.Itoa(n), "MASTER_ADDR=127.0.0.1", "MASTER_PORT="+strconv.Itoa(port))
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Stdout, cmd.Stderr = c.App.Writer, errOut
		var pw *os.File
		if r > 0 {
			pr, w, err := os.Pipe()
			if err != nil {
				killAll(procs)
				return fmt.Errorf("--gpus %d: rank %d's output: %w", n, r, err)
			}
			pw, cmd.Stdout, cmd.Stderr = w, w, w
			copying.Add(1)
			go prefixLines(&copying, pr, errOut, fmt.Sprintf("[rank %d] ", r))
		}
		err := cmd.Start()
		if pw != nil {
			pw.Close() // the child holds its own copy; the reader ends when the child does
		}
		if err != nil {
			killAll(procs)
			return fmt.Errorf("--gpus %d: starting rank %d: %w", n, r, err)
		}
		procs = append(procs, cmd)
	}
	type exit struct {
		rank int
		err  error
	}
	done := make(chan exit, n)
	for r, p := range procs {
		go func() { done <- exit{r, p.Wait()} }()
	}
	var failed *exit
	interrupted := false
	for left := n; left > 0; {
		select {
		case s := <-sig: // passed on once to each rank (they are not in the terminal's process group)
			for _, p := range procs {
				_ = p.Process.Signal(s)
			}
		case e := <-done:
			left--
			switch code := exitCode(e.err); {
			case code == 0:
			case code == 130:
				interrupted = true // the ranks stop together after the same update: nothing to kill
			case failed == nil:
				failed = &e
				killAll(procs) // the others would wait for it in their next all-reduce
			}
		}
	}
	copying.Wait()
	switch {
	case failed != nil:
		return cli.Exit(fmt.Sprintf("t2m: rank %d of %d failed (%v; its error is above), so the other ranks were stopped; "+
			"a checkpoint on disk is intact (--resume continues it, with any number of GPUs)", failed.rank, n, failed.err), max(1, exitCode(failed.err)))
	case interrupted:
		return cli.Exit("", 130)
	}
	return nil
}

// exitCode is a finished child's exit status (0 for nil, -1 for a signal or an error that is no exit).
func exitCode(err error) int {
	if err == nil {
		return 0
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// killAll kills every started rank's process group.
func killAll(procs []*exec.Cmd) {
	for _, p := range procs {
		_ = syscall.Kill(-p.Process.Pid, syscall.SIGKILL) // ESRCH for one that has ended

	}
}

// prefixLines copies r to w line by line, each line prefixed.
func prefixLines(wg *sync.WaitGroup, r io.ReadCloser, w io.Writer, prefix string) {
	defer wg.Done()
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Fprintf(w, "%s%s\n", prefix, sc.Text())
	}
}

// freePort is a TCP port of 127.0.0.1 that nothing listens on now (rank 0 listens on it next).
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("finding a free port for the ranks' rendezvous: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
