// Command slackload measures the Slack bot under load: it starts the
// project's fake Slack (internal/slackapp/slacktest), runs the real bot
// binary against it in demo mode (AGENTHUB_DEMO=1: simulated providers) as a
// separate process, and sends app_mention events at a fixed rate, each a
// full public read (plan, policy, lease, provider call, audit, threaded
// reply). It reports the ack latency as the fake Slack sees it (from
// writing the envelope to reading its ack), the replies delivered per
// second, the bot's memory (peak and final resident set), and the CPU each
// party on the machine spent per mention: the bot, the simulated providers
// when they run apart (-sim-process), this process (the fake Slack and the
// sender) and the Redis server.
//
// -cpuprofile FILE builds the bot with -tags pprof and saves its CPU
// profile of the sending window; the binaries people run serve no profiles.
//
//	go run ./cmd/slackload -rate 1000 -duration 30s
//	go run ./cmd/slackload -rate 2000 -duration 30s -store redis://127.0.0.1:6379/9
//
// The sender is open-loop: envelope i is due at start + i/rate whether or
// not the bot keeps up, and latency is measured from when it was actually
// written. docs/PERFORMANCE.md has the figures and the machine.
package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "slackload:", err)
		os.Exit(1)
	}
}

type config struct {
	rate     int
	duration time.Duration
	users    int
	store    string
	prefix   string
	bot      string
	channel  string
	text     string
	profile  string
	simProc  bool
}

func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("slackload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var c config
	fs.IntVar(&c.rate, "rate", 1000, "mentions per second")
	fs.DurationVar(&c.duration, "duration", 30*time.Second, "how long to send")
	fs.IntVar(&c.users, "users", 50, "distinct people sending")
	fs.StringVar(&c.store, "store", "", "the bot's store: redis://… (default: an embedded bolt file in a temporary directory)")
	fs.StringVar(&c.prefix, "prefix", "", "Redis key prefix (default: a random one, whose keys are deleted at the end)")
	fs.StringVar(&c.bot, "bot", "", "the bot binary (default: go build ./cmd/bot into a temporary directory)")
	fs.StringVar(&c.channel, "channel", "C0LOAD", "channel of the mentions")
	fs.StringVar(&c.text, "text", "list open pull requests in acme/website", "what each mention asks")
	fs.BoolVar(&c.simProc, "sim-process", false, "serve the simulated providers from a 'bot sim' process of their own (AGENTHUB_SIM_URL) instead of inside the bot")
	fs.StringVar(&c.profile, "cpuprofile", "", "write the bot's CPU profile of the sending window to this file (builds the bot with -tags pprof)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if c.rate <= 0 || c.duration <= 0 || c.users <= 0 {
		return errors.New("-rate, -duration and -users must be positive")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	tmp, err := os.MkdirTemp("", "slackload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if c.profile != "" && c.bot != "" {
		return errors.New("-cpuprofile builds its own bot: leave out -bot")
	}
	if c.bot == "" {
		c.bot = filepath.Join(tmp, "bot")
		build := exec.CommandContext(ctx, "go", "build", "-o", c.bot, "./cmd/bot")
		if c.profile != "" {
			build.Args = append(build.Args[:2], "-tags", "pprof", "-o", c.bot, "./cmd/bot")
		}
		build.Stdout, build.Stderr = stderr, stderr
		if err := build.Run(); err != nil {
			return fmt.Errorf("build the bot: %w", err)
		}
	}
	if c.store == "" {
		c.store = "bolt:" + filepath.Join(tmp, "bot.db")
	}
	if c.prefix == "" {
		c.prefix = "slackload-" + strconv.FormatInt(time.Now().UnixNano(), 36)
		if strings.HasPrefix(c.store, "redis") {
			defer func() {
				if err := deleteKeys(c.store, c.prefix); err != nil {
					fmt.Fprintf(stderr, "slackload: keys under %s not deleted: %v\n", c.prefix, err)
				}
			}()
		}
	}

	srv := slacktest.Start()
	defer srv.Close()
	httpAddr, err := freeAddr()
	if err != nil {
		return err
	}
	pprofAddr := ""
	if c.profile != "" {
		if pprofAddr, err = freeAddr(); err != nil {
			return err
		}
	}
	var simURL string
	var simProc *process
	if c.simProc {
		simAddr, err := freeAddr()
		if err != nil {
			return err
		}
		simURL = "http://" + simAddr
		if simProc, err = startProcess(exec.Command(c.bot, "sim", "-addr", simAddr), filepath.Join(tmp, "sim.log")); err != nil {
			return fmt.Errorf("start the simulated providers: %w", err)
		}
		defer simProc.stop()
		if err := waitListening(ctx, simAddr, 10*time.Second); err != nil {
			return fmt.Errorf("the simulated providers did not start: %w (their log: %s)", err, simProc.logPath)
		}
	}
	bot, err := startBot(ctx, c, srv, httpAddr, pprofAddr, simURL, tmp, stderr)
	if err != nil {
		return err
	}
	defer bot.stop()

	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = srv.WaitHellos(wctx, 1)
	cancel()
	if err != nil {
		return fmt.Errorf("the bot did not connect: %w (its log: %s)", err, bot.logPath)
	}

	users := make([]string, c.users)
	for i := range users {
		users[i] = fmt.Sprintf("U0LOAD%04d", i)
	}
	// Warm-up: each person's first contact connects them to the simulated
	// services, which is not what is measured.
	fmt.Fprintf(stderr, "warming up %d users…\n", c.users)
	for _, u := range users {
		if _, err := srv.Push(ctx, mention(srv, c, u)); err != nil {
			return err
		}
	}
	if err := waitReplies(ctx, srv, c.channel, c.users, 60*time.Second); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}

	fmt.Fprintf(stderr, "sending %d mentions/s for %s…\n", c.rate, c.duration)
	repliesBefore := len(srv.Calls("chat.postMessage"))
	acksBefore := len(srv.Acks())
	profiled := make(chan error, 1)
	if c.profile != "" {
		go func() { profiled <- fetchProfile(ctx, pprofAddr, c.duration, c.profile) }()
	}
	cpu0 := readCPU(bot, simProc, c.store)
	res, err := send(ctx, srv, c, users)
	if err != nil {
		return err
	}
	cpu1 := readCPU(bot, simProc, c.store)
	// Let the bot finish what it acked; replies count until then.
	waitReplies(ctx, srv, c.channel, c.users+res.sent, 60*time.Second)
	rss, hwm := bot.memory()
	botAcks := scrape("http://"+httpAddr+"/metrics", "agenthub_slack_ack_seconds")

	acks := srv.Acks()[acksBefore:]
	var lat []time.Duration
	for _, a := range acks {
		if at, ok := res.pushed[a.EnvelopeID]; ok {
			lat = append(lat, a.At.Sub(at))
		}
	}
	slices.Sort(lat)
	calls := srv.Calls("chat.postMessage")[repliesBefore:]
	var inWindow int
	var last time.Time
	for _, cl := range calls {
		if !cl.At.After(res.end) {
			inWindow++
		}
		last = cl.At
	}
	fmt.Fprintf(stdout, "store:              %s\n", redactStore(c.store))
	fmt.Fprintf(stdout, "machine:            %d CPUs (GOMAXPROCS %d), %s/%s\n", runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(stdout, "offered:            %d mentions/s for %s: %d sent (%.0f/s achieved)\n", c.rate, c.duration, res.sent, float64(res.sent)/res.end.Sub(res.start).Seconds())
	fmt.Fprintf(stdout, "acked:              %d of %d (the rest found the bot's queue full and were left unacked, for Slack to redeliver; the fake does not)\n", len(lat), res.sent)
	fmt.Fprintf(stdout, "ack latency:        p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  (fake Slack: envelope written → ack read)\n",
		pct(lat, 50), pct(lat, 90), pct(lat, 99), pct(lat, 99.9), pct(lat, 100))
	if botAcks != "" {
		fmt.Fprintf(stdout, "bot's ack metric:   %s\n", botAcks)
	}
	fmt.Fprintf(stdout, "replies:            %d of %d; %.0f/s during the sending window; all done %.1fs after the last send\n",
		len(calls), res.sent, float64(inWindow)/res.end.Sub(res.start).Seconds(), last.Sub(res.end).Seconds())
	fmt.Fprintf(stdout, "bot memory:         peak RSS %s, RSS at the end %s\n", hwm, rss)
	fmt.Fprintf(stdout, "CPU per mention:    %s  (while sending, over the mentions sent)\n", cpu1.per(cpu0, res.sent))
	if c.profile != "" {
		if err := <-profiled; err != nil {
			return fmt.Errorf("cpu profile: %w", err)
		}
		fmt.Fprintf(stdout, "cpu profile:        %s (go tool pprof -top %s)\n", c.profile, c.profile)
	}
	return nil
}

// cpuTimes are the CPU seconds, user plus system, of the parties on the
// machine.
type cpuTimes struct{ bot, sim, self, redis float64 }

// readCPU reads them now. The Redis figure is the server's whole CPU, so it
// is meaningful only when nothing else uses that server.
func readCPU(b *bot, simProc *process, store string) cpuTimes {
	t := cpuTimes{bot: procCPU(b.cmd.Process.Pid)}
	if simProc != nil {
		t.sim = procCPU(simProc.cmd.Process.Pid)
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		t.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	if strings.HasPrefix(store, "redis") {
		if opts, err := redis.ParseURL(store); err == nil {
			c := redis.NewClient(opts)
			info, err := c.Info(context.Background(), "cpu").Result()
			c.Close()
			if err == nil {
				for _, line := range strings.Split(info, "\n") {
					k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
					if ok && (k == "used_cpu_sys" || k == "used_cpu_user") {
						f, _ := strconv.ParseFloat(v, 64)
						t.redis += f
					}
				}
			}
		}
	}
	return t
}

// procCPU is a process's CPU seconds so far, from /proc/PID/stat.
func procCPU(pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th of them, in clock ticks (100 per second
	// on Linux).
	i := strings.LastIndexByte(string(raw), ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(raw[i+1:]))
	if len(f) <= 12 {
		return 0
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	s, _ := strconv.ParseFloat(f[12], 64)
	return (u + s) / 100
}

func (t cpuTimes) per(before cpuTimes, n int) string {
	if n == 0 {
		return "-"
	}
	us := func(a, b float64) string { return fmt.Sprintf("%.0f µs", (a-b)*1e6/float64(n)) }
	s := "bot " + us(t.bot, before.bot)
	if t.sim > 0 {
		s += ", simulated providers " + us(t.sim, before.sim)
	}
	s += ", fake Slack and sender " + us(t.self, before.self)
	if t.redis > 0 {
		s += ", Redis " + us(t.redis, before.redis)
	}
	return s
}

// fetchProfile takes the bot's CPU profile over most of the sending window.
func fetchProfile(ctx context.Context, addr string, window time.Duration, path string) error {
	secs := max(1, int((window-2*time.Second)/time.Second))
	select {
	case <-time.After(time.Second):
	case <-ctx.Done():
		return ctx.Err()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof answered %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// result is what send did.
type result struct {
	sent       int
	start, end time.Time
	pushed     map[string]time.Time // envelope ID → when it was written
}

// send pushes mentions open-loop at c.rate for c.duration.
func send(ctx context.Context, srv *slacktest.Server, c config, users []string) (result, error) {
	res := result{pushed: make(map[string]time.Time, c.rate*int(c.duration/time.Second+1))}
	interval := time.Second / time.Duration(c.rate)
	res.start = time.Now()
	deadline := res.start.Add(c.duration)
	for i := 0; ; i++ {
		due := res.start.Add(time.Duration(i) * interval)
		if !due.Before(deadline) {
			break
		}
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		env := mention(srv, c, users[i%len(users)])
		at := time.Now()
		id, err := srv.Push(ctx, env)
		if err != nil {
			return res, err
		}
		res.pushed[id] = at
		res.sent++
	}
	res.end = time.Now()
	return res, nil
}

func mention(srv *slacktest.Server, c config, user string) slacktest.Envelope {
	return srv.AppMention(slacktest.Msg{User: user, Channel: c.channel, Text: "<@" + slacktest.BotUserID + "> " + c.text})
}

// waitReplies waits until n messages are in channel or the time is up.
func waitReplies(ctx context.Context, srv *slacktest.Server, channel string, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for len(srv.Messages(channel)) < n {
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d replies after %s", len(srv.Messages(channel)), n, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func pct(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted)-1) * p / 100)
	return sorted[i].Round(10 * time.Microsecond)
}

// bot is the bot process, whose memory is sampled.
type bot struct {
	*process

	mu       sync.Mutex
	peak     int64 // kB
	sampling chan struct{}
}

func startBot(ctx context.Context, c config, srv *slacktest.Server, httpAddr, pprofAddr, simURL, dir string, stderr io.Writer) (*bot, error) {
	key := func() string {
		b := make([]byte, 32)
		rand.Read(b)
		return base64.StdEncoding.EncodeToString(b)
	}
	cmd := exec.Command(c.bot)
	cmd.Env = append(os.Environ(),
		"SLACK_APP_TOKEN=xapp-load-"+strconv.FormatInt(time.Now().UnixNano(), 16),
		"SLACK_BOT_TOKEN=xoxb-load-"+strconv.FormatInt(time.Now().UnixNano(), 16),
		"SLACK_API_URL="+srv.APIURL(),
		"AGENTHUB_DEMO=1",
		"AGENTHUB_STORE="+c.store,
		"AGENTHUB_REDIS_PREFIX="+c.prefix,
		"AGENTHUB_VAULT_KEY="+key(),
		"AGENTHUB_AUDIT_KEY="+key(),
		"AGENTHUB_HTTP_ADDR="+httpAddr,
		"AGENTHUB_LOG_LEVEL=warn",
	)
	if pprofAddr != "" {
		cmd.Env = append(cmd.Env, "AGENTHUB_PPROF_ADDR="+pprofAddr)
	}
	if simURL != "" {
		cmd.Env = append(cmd.Env, "AGENTHUB_SIM_URL="+simURL)
	}
	p, err := startProcess(cmd, filepath.Join(dir, "bot.log"))
	if err != nil {
		return nil, fmt.Errorf("start the bot: %w", err)
	}
	b := &bot{process: p, sampling: make(chan struct{})}
	go b.sample()
	return b, nil
}

// sample keeps the peak resident set; VmHWM would do, but reading it
// often also shows when it was reached.
func (b *bot) sample() {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-b.done:
			return
		case <-b.sampling:
			return
		case <-t.C:
			rss, _ := b.status("VmRSS")
			b.mu.Lock()
			b.peak = max(b.peak, rss)
			b.mu.Unlock()
		}
	}
}

func (b *bot) status(field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", b.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("no %s", field)
}

// memory returns the resident set now and its peak, in MiB.
func (b *bot) memory() (rss, peak string) {
	now, err := b.status("VmRSS")
	if err != nil {
		return "?", "?"
	}
	hwm, err := b.status("VmHWM")
	if err != nil {
		b.mu.Lock()
		hwm = b.peak
		b.mu.Unlock()
	}
	return mib(now), mib(hwm)
}

func mib(kb int64) string { return fmt.Sprintf("%.0f MiB", float64(kb)/1024) }

// process is a process slackload started (the bot, the simulated
// providers), its output in a log file.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
}

func startProcess(cmd *exec.Cmd, logPath string) (*process, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, err
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

func (p *process) stop() {
	p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.done:
	case <-time.After(15 * time.Second): // the bot drains its queues for up to 10 s
		p.cmd.Process.Kill()
		<-p.done
	}
}

// waitListening waits until something accepts connections at addr.
func waitListening(ctx context.Context, addr string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// scrape summarizes a histogram from the bot's /metrics: the share of
// observations within 1, 2 and 5 ms.
func scrape(url, name string) string {
	resp, err := http.Get(url)
	if err != nil {
		return ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	re := regexp.MustCompile(`(?m)^` + name + `_bucket\{le="([^"]+)"\} (\d+)$`)
	count := regexp.MustCompile(`(?m)^` + name + `_count (\d+)$`).FindSubmatch(body)
	if count == nil {
		return ""
	}
	total, _ := strconv.ParseFloat(string(count[1]), 64)
	if total == 0 {
		return ""
	}
	var parts []string
	for _, m := range re.FindAllSubmatch(body, -1) {
		switch string(m[1]) {
		case "0.001", "0.002", "0.005":
			n, _ := strconv.ParseFloat(string(m[2]), 64)
			parts = append(parts, fmt.Sprintf("≤%sms %.2f%%", strings.TrimPrefix(strings.TrimLeft(string(m[1]), "0."), ""), 100*n/total))
		}
	}
	return fmt.Sprintf("%.0f acks (reader receipt → ack queued): %s", total, strings.Join(parts, ", "))
}

func redactStore(s string) string {
	if i := strings.Index(s, "@"); i >= 0 {
		if j := strings.Index(s, "://"); j >= 0 && j < i {
			return s[:j+3] + "…" + s[i:]
		}
	}
	return s
}

// deleteKeys removes every key the bot wrote under prefix.
func deleteKeys(rawURL, prefix string) error {
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return err
	}
	c := redis.NewClient(opts)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var cursor uint64
	for {
		keys, next, err := c.Scan(ctx, cursor, prefix+":*", 1000).Result()
		if err != nil {
			return err
		}
		if len(keys) > 0 {
			if err := c.Unlink(ctx, keys...).Err(); err != nil {
				return err
			}
		}
		if cursor = next; cursor == 0 {
			return nil
		}
	}
}
