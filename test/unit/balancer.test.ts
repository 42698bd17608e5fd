import { expect } from 'chai'
import { LatencyAverage, leastOutstanding, powerOfTwoChoices, roundRobin, type EndpointLoad } from '../../lib/rpc/balancer.js'

const load = (endpoint: string, inFlight: number, latencyMs: number): EndpointLoad => ({ endpoint, inFlight, latencyMs })

/** A random source that returns the given values in turn. */
const sequence = (...values: number[]): (() => number) => {
  let i = 0
  return () => values[i++ % values.length]!
}

describe('balancers', () => {
  it('round robin takes each endpoint in turn, whatever its load', () => {
    const policy = roundRobin()
    const candidates = [load('a', 100, 50), load('b', 0, 1), load('c', 5, 5)]
    expect(Array.from({ length: 6 }, () => policy.pick(candidates).endpoint)).to.deep.equal(['a', 'b', 'c', 'a', 'b', 'c'])
  })

  it('least outstanding takes the fewest calls in flight, and spreads ties', () => {
    const policy = leastOutstanding()
    expect(policy.pick([load('a', 3, 1), load('b', 1, 100), load('c', 2, 1)]).endpoint).to.equal('b')
    const tied = [load('a', 0, 1), load('b', 0, 1)]
    expect(new Set(Array.from({ length: 4 }, () => policy.pick(tied).endpoint))).to.deep.equal(new Set(['a', 'b']))
  })

  it('power of two choices draws two distinct endpoints and takes the lower (inFlight + 1) x latency', () => {
    // Draws index 0, then 0 of the remaining two, which is index 1: a and b are compared.
    const policy = powerOfTwoChoices(sequence(0, 0))
    const candidates = [load('a', 1, 10), load('b', 4, 1), load('c', 0, 1)]
    // a: 2 x 10 = 20, b: 5 x 1 = 5.
    expect(policy.pick(candidates).endpoint).to.equal('b')
    // c is never drawn here, although it is the cheapest: the pick is among the two drawn only.
    expect(Array.from({ length: 10 }, () => policy.pick(candidates).endpoint)).to.not.include('c')
  })

  it('power of two choices compares a server that has not answered yet on load alone', () => {
    const policy = powerOfTwoChoices(sequence(0, 0))
    expect(policy.pick([load('new', 0, 0), load('busy', 3, 2)]).endpoint).to.equal('new')
    expect(policy.pick([load('new', 5, 0), load('known', 1, 2)]).endpoint).to.equal('known')
  })

  it('power of two choices counts costs within 20 % as a tie, won by the first drawn', () => {
    const policy = powerOfTwoChoices(sequence(0, 0))
    // a: 1 x 10, b: 1 x 9: a tie, so a (drawn first); b at 7 is clearly cheaper.
    expect(policy.pick([load('a', 0, 10), load('b', 0, 9)]).endpoint).to.equal('a')
    expect(policy.pick([load('a', 0, 10), load('b', 0, 7)]).endpoint).to.equal('b')
  })

  it('power of two choices counts answer times under 1 ms as 1 ms: equal fast servers are compared on load', () => {
    const policy = powerOfTwoChoices(sequence(0, 0))
    expect(policy.pick([load('a', 0, 0.2), load('b', 0, 0.05)]).endpoint).to.equal('a')
    expect(policy.pick([load('a', 2, 0.2), load('b', 0, 0.9)]).endpoint).to.equal('b')
  })

  it('power of two choices with one endpoint returns it without drawing', () => {
    const policy = powerOfTwoChoices(() => {
      throw new Error('drew')
    })
    expect(policy.pick([load('only', 9, 9)]).endpoint).to.equal('only')
  })

  it('the latency average starts at the first sample, moves a fifth of the way per sample, and halves per half-life unsampled', () => {
    const avg = new LatencyAverage(0.2, 1000)
    expect(avg.ms(0)).to.equal(0)
    avg.add(10, 0)
    expect(avg.ms(0)).to.equal(10)
    avg.add(20, 0)
    expect(avg.ms(0)).to.be.closeTo(12, 1e-9)
    // Not sampled for two half-lives: a quarter, so a shunned server gets tried again.
    expect(avg.ms(2000)).to.be.closeTo(3, 1e-9)
    avg.add(3, 2000)
    expect(avg.ms(2000)).to.be.closeTo(3, 1e-9)
  })
})
