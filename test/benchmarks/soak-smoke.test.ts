import { expect } from 'chai'
import { main } from '../../benchmarks/soak.bench.js'

describe('the memory soak (smoke)', function () {
  this.timeout(30_000)

  it('runs 20,000 calls with --quick, every call answered, and reports the heap and the memory of a call in flight', async () => {
    const result = await main(['--quick', '--calls=20000'])
    expect(result.calls).to.equal(20_000)
    expect(result.failures).to.equal(0)
    expect(result.atEnd.heapMb).to.be.above(0)
    // Held calls cost something on both sides; a reading of zero or less would mean the measurement broke.
    expect(result.bytesPerCallInFlight).to.be.above(0)
  })
})
