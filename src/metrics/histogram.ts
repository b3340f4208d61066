/**
 * A histogram whose buckets are counted elsewhere (the gateways' shared block) and only reported
 * here. prom-client's Histogram can only `observe()`, one value at a time; this reports bucket
 * counts read at scrape time in the same shape its Registry formats (`_bucket` with `le`,
 * `_sum`, `_count`), so it sits in a Registry beside the ordinary metrics.
 */
import type { LabelValues, Metric, Registry } from 'prom-client';

interface Sample {
  metricName: string;
  labels: LabelValues<string>;
  value: number;
}

export interface HistogramRow {
  labels: LabelValues<string>;
  /** Counts per bucket, not cumulative, the last one +Inf (one more than `bounds`). */
  buckets: readonly number[];
  sum: number;
}

export class CollectedHistogram {
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;

  constructor(
    readonly name: string,
    readonly help: string,
    readonly bounds: readonly number[],
    private readonly rows: () => HistogramRow[],
  ) {}

  register(registry: Registry): this {
    // The Registry needs only name, get() and the fields get() returns.
    registry.registerMetric(this as unknown as Metric);
    return this;
  }

  async get(): Promise<{ name: string; help: string; type: 'histogram'; values: Sample[]; aggregator: 'sum' }> {
    const values: Sample[] = [];
    for (const r of this.rows()) {
      let acc = 0;
      this.bounds.forEach((le, i) => {
        acc += r.buckets[i] ?? 0;
        values.push({ metricName: `${this.name}_bucket`, labels: { ...r.labels, le }, value: acc });
      });
      acc += r.buckets[this.bounds.length] ?? 0;
      values.push({ metricName: `${this.name}_bucket`, labels: { ...r.labels, le: '+Inf' }, value: acc });
      values.push({ metricName: `${this.name}_sum`, labels: r.labels, value: r.sum });
      values.push({ metricName: `${this.name}_count`, labels: r.labels, value: acc });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }
}
