def log_stats(name, t):
    print(f"{name}: mean={t.mean().item():+.4f} std={t.std().item():.4f}")
