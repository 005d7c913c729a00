"""Prints the comparison table of bench/embed.sh from the files it left in OUT."""
import json, sys, os
out = sys.argv[1]
def timefile(n):
    wall, rss = open(os.path.join(out, n + ".time")).read().split()[-2:]
    return float(wall), int(rss) / 1024
ours_w2v = json.load(open(os.path.join(out, "ours_w2v.json")))
gen = json.loads(open(os.path.join(out, "gensim_w2v.stats")).read().strip().splitlines()[-1])
ours_pmi = json.load(open(os.path.join(out, "ours_pmi.json")))
sci = json.loads(open(os.path.join(out, "scipy_pmi.stats")).read().strip().splitlines()[-1])
ow, gw = ours_w2v["stats"]["words_per_sec"], gen["words_per_sec"]
oc, gc = ours_w2v["stats"]["cpu_seconds"], gen["cpu_seconds"]
print(f"\nword2vec  ours {ow:,.0f} words/s ({ours_w2v['stats']['seconds']:.1f}s, {oc:.1f} CPU-s)  "
      f"gensim {gw:,.0f} words/s ({gen['seconds']:.1f}s, {gc:.1f} CPU-s)  "
      f"speed-up {ow / gw:.2f}x wall, {gc / oc:.2f}x per CPU-second")
(owall, orss), (swall, srss) = timefile("ours_pmi"), timefile("scipy_pmi")
print(f"pmi       ours {owall:.1f}s wall, {orss:.0f} MiB peak RSS   scipy {swall:.1f}s wall, "
      f"{srss:.0f} MiB peak RSS   speed-up {swall / owall:.1f}x")
print(f"          singular values 1, 512: ours {ours_pmi['stats']['singular_values'][0]:.2f} "
      f"{ours_pmi['stats']['singular_values'][-1]:.3f}   scipy {sci['top_singular_values'][0]:.2f} "
      f"{sci.get('last_singular_value', float('nan')):.3f}")
print(f"\n{'vectors':<12} {'WS353 rho':>10} {'pairs(oov)':>11} {'analogy':>8} {'answered(oov)':>15}")
for v in ["ours_w2v", "gensim_w2v", "ours_pmi", "scipy_pmi"]:
    e = json.load(open(os.path.join(out, v + ".eval.json")))
    s, a = e["similarity"][0], e["analogy"][0]
    print(f"{v:<12} {s['spearman']:>10.4f} {s['pairs'] - s['oov_pairs']:>6}({s['oov_pairs']:>3}) "
          f"{100 * a['accuracy']:>7.2f}% {a['questions'] - a['oov_questions']:>8}({a['oov_questions']:>5})")
print()
for v in ["ours_w2v", "gensim_w2v", "ours_pmi", "scipy_pmi"]:
    e = json.load(open(os.path.join(out, v + ".eval.json")))
    for w, nn in e["neighbours"].items():
        print(f"{v:<11} {w:>6}: " + (", ".join(x[0] for x in nn) if nn else "(oov)"))
